//! What putting a deploy back would do to its database, found during the
//! rehearsal on the copy its migrations just ran on.

use crate::data::fingerprint::Fingerprint;
use crate::data::rehearse::{read_fingerprint, Scratch};
use crate::data::schema::Diff;
use crate::data::steps::Steps;
use crate::data::undo::{self, Undo};
use crate::model::commit::Foreseen;

impl Scratch<'_> {
    /// What putting the deploy back would do, found on the copy the
    /// migrations just ran on: a reversal is run there, and must leave a
    /// schema the serving release runs on.
    pub(crate) async fn foresee(
        &self,
        steps: &Steps<'_>,
        before: &Fingerprint,
        after: &Fingerprint,
    ) -> Foreseen {
        let reversible = undo::reversible(self.config, self.env.database.reverse.as_ref());
        match undo::decide(before, after, reversible) {
            Undo::Nothing | Undo::Keep { .. } => Foreseen::Keep,
            Undo::Restore { why } => Foreseen::Restore { why },
            Undo::Reverse { applied, .. } => {
                let removes =
                    undo::removed_by_reversal(&Diff::between(&before.objects, &after.objects));
                let reverse = self.env.database.reverse.as_ref();
                let Some(reversal) = undo::reverse_command(
                    self.config,
                    reverse,
                    &steps.vars(),
                    &before.applied,
                    &applied,
                ) else {
                    return Foreseen::Restore {
                        why: "the migrations' names cannot be given to a reversal".into(),
                    };
                };
                let step = undo::step(steps, &reversal);
                if let Err(e) = self.site.run(self.printer, &step, None).await {
                    let last = e.output.lines().last().unwrap_or("").trim().to_string();
                    return Foreseen::Restore {
                        why: format!("reversing them fails on the copy: {last}"),
                    };
                }
                match read_fingerprint(self.site, self.db, self.copy, false, self.printer).await {
                    Ok(back)
                        if matches!(
                            undo::decide(before, &back, false),
                            Undo::Nothing | Undo::Keep { .. }
                        ) =>
                    {
                        Foreseen::Reverse { removes }
                    }
                    _ => Foreseen::Restore {
                        why: "the reversal leaves a schema the serving release does not run on"
                            .into(),
                    },
                }
            }
        }
    }
}

//! A constraint a migration found the data violating, read from the
//! migration's output (SQLite's and PostgreSQL's wording).

/// A violated constraint, as read from a failed migration's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Unique {
        table: Option<String>,
        index: Option<String>,
        columns: Vec<String>,
    },
    NotNull {
        table: String,
        column: String,
    },
    ForeignKey {
        detail: String,
    },
}

impl Violation {
    /// Reads the first constraint violation in a migration's output.
    pub fn parse(output: &str) -> Option<Violation> {
        for line in output.lines() {
            // SQLite: `UNIQUE constraint failed: new__lists_item.list_id, new__lists_item.text`
            if let Some(rest) = after(line, "UNIQUE constraint failed: ") {
                let mut table = None;
                let mut columns = Vec::new();
                for part in rest.split(',') {
                    let part = part.trim();
                    let (t, c) = part.rsplit_once('.')?;
                    table = Some(t.trim_start_matches("new__").to_string());
                    columns.push(c.to_string());
                }
                return Some(Violation::Unique {
                    table,
                    index: None,
                    columns,
                });
            }
            if let Some(rest) = after(line, "NOT NULL constraint failed: ") {
                let (t, c) = rest.trim().rsplit_once('.')?;
                return Some(Violation::NotNull {
                    table: t.trim_start_matches("new__").to_string(),
                    column: c.to_string(),
                });
            }
            if line.contains("FOREIGN KEY constraint failed") {
                return Some(Violation::ForeignKey {
                    detail: line.trim().to_string(),
                });
            }
            // PostgreSQL: `could not create unique index "lists_item_list_id_text_uniq"`
            // followed by `DETAIL:  Key (list_id, text)=(1, milk) is duplicated.`
            if let Some(rest) = after(line, "could not create unique index \"") {
                let index = rest.split('"').next().map(str::to_string);
                let columns = output
                    .lines()
                    .find_map(|l| after(l, "Key ("))
                    .and_then(|k| k.split(")=").next())
                    .map(|cols| {
                        cols.split(',')
                            .map(|c| c.trim().trim_matches('"').to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                return Some(Violation::Unique {
                    table: None,
                    index,
                    columns,
                });
            }
            // PostgreSQL: `column "text" of relation "lists_item" contains null values`
            if let Some(rest) = after(line, "column \"") {
                if line.contains("contains null values") {
                    let column = rest.split('"').next()?.to_string();
                    let table = after(rest, "of relation \"")?
                        .split('"')
                        .next()?
                        .to_string();
                    return Some(Violation::NotNull { table, column });
                }
            }
            if line.contains("violates foreign key constraint") {
                let detail = output
                    .lines()
                    .find(|l| l.contains("DETAIL:"))
                    .unwrap_or(line)
                    .trim()
                    .to_string();
                return Some(Violation::ForeignKey { detail });
            }
        }
        None
    }

    /// What the constraint is, in words.
    pub fn describe(&self) -> String {
        match self {
            Violation::Unique {
                table,
                index,
                columns,
            } => {
                let mut text = format!("UNIQUE ({})", columns.join(", "));
                if let Some(t) = table {
                    text.push_str(&format!(" on table {t}"));
                }
                if let Some(i) = index {
                    text.push_str(&format!(" (index {i})"));
                }
                text
            }
            Violation::NotNull { table, column } => format!("NOT NULL on {table}.{column}"),
            Violation::ForeignKey { detail } => format!("FOREIGN KEY: {detail}"),
        }
    }
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

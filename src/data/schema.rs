//! A database's schema as a set of lines, one per object (a table, a
//! column, an index, a constraint; on PostgreSQL also schemas, owners,
//! privileges, extensions and comments), and the migrations its migration
//! table lists, in the order they were applied. Read by the fingerprint
//! script on the migrate host; compared here to say what a migration did
//! and whether the release going back runs on the result (it only added).
//!
//! Each line is `kind table rest…`, words separated by one space (a space
//! inside a name is written `%20`), so that what changed is said per object.

use std::collections::BTreeSet;

/// Python lines (appended to the SQLite fingerprint script, `c` being a
/// read-only connection) that print `object …` and `applied …` lines.
pub const SQLITE_OBJECTS: &str = r#"import re
def w(s):
    return "-" if s is None or s == "" else str(s).replace("%", "%25").replace(" ", "%20").replace("\n", "%0A")
def h(s):
    return hashlib.sha256(str(s).encode()).hexdigest()[:12]
for name, sql in c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
    q = '"%s"' % name.replace('"', '""')
    print("object table", w(name))
    for _, col, typ, notnull, dflt, pk in c.execute("PRAGMA table_info(%s)" % q).fetchall():
        print("object column", w(name), w(col), w(typ), "notnull" if notnull else "null", "default" if dflt is not None or pk else "nodefault")
    for _, iname, unique, origin, partial in c.execute("PRAGMA index_list(%s)" % q).fetchall():
        isql = c.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (iname,)).fetchone()
        print("object index", w(name), w(iname), "unique" if unique else "plain", h(isql[0] if isql else origin))
    for fk in c.execute("PRAGMA foreign_key_list(%s)" % q).fetchall():
        print("object fk", w(name), w(fk[3]), w(fk[2]), w(fk[4]))
    for check in re.findall(r"CHECK\s*\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)", sql or "", re.I):
        print("object check", w(name), h(check))
for typ, name, tbl, sql in c.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') ORDER BY name").fetchall():
    print("object", typ, w(tbl), w(name), h(sql))
for t, col in (("django_migrations", "app || '.' || name"), ("schema_migrations", "*"), ("knex_migrations", "name"), ("alembic_version", "version_num")):
    if t in tables:
        for r in c.execute('SELECT %s FROM "%s" ORDER BY rowid' % (col, t)).fetchall():
            print("applied", w(r[0]))
"#;

/// The PostgreSQL query (one statement) that prints `object …` lines for
/// every schema but the system's, and `applied …` lines from Django's
/// migration table.
pub const POSTGRES_OBJECTS: &str = "\
WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname NOT IN ('information_schema') AND nspname NOT LIKE 'pg\\_%'), \
ext AS (SELECT objid, classid FROM pg_depend WHERE deptype = 'e'), \
rel AS (SELECT c.oid, c.relkind, c.relowner, c.relacl, ns.nspname || '.' || c.relname AS name FROM pg_class c JOIN ns ON ns.oid = c.relnamespace \
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)) \
SELECT 'object ' || line FROM ( \
 SELECT 'schema ' || nspname || ' ' || pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '-') AS line FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM ns) \
 UNION ALL SELECT 'extension ' || e.extname || ' ' || e.extnamespace::regnamespace::text || ' ' || e.extversion FROM pg_extension e WHERE e.extname <> 'plpgsql' \
 UNION ALL SELECT CASE relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'S' THEN 'sequence' ELSE 'view' END || ' ' || name || ' ' || pg_get_userbyid(relowner) || ' ' || coalesce(relacl::text, '-') \
  || CASE WHEN relkind IN ('v', 'm') THEN ' ' || left(md5(pg_get_viewdef(oid)), 12) ELSE '' END FROM rel \
 UNION ALL SELECT 'column ' || rel.name || ' ' || replace(a.attname, ' ', '%20') || ' ' || replace(format_type(a.atttypid, a.atttypmod), ' ', '%20') || ' ' \
  || CASE WHEN a.attnotnull THEN 'notnull' ELSE 'null' END || ' ' || CASE WHEN a.atthasdef OR a.attidentity <> '' THEN 'default' ELSE 'nodefault' END || ' ' || coalesce(a.attacl::text, '-') \
  FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid WHERE rel.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
 UNION ALL SELECT 'constraint ' || rel.name || ' ' || co.conname || ' ' || co.contype::text || ' ' || left(md5(pg_get_constraintdef(co.oid)), 12) FROM pg_constraint co JOIN rel ON rel.oid = co.conrelid \
 UNION ALL SELECT 'index ' || rel.name || ' ' || i.relname || ' ' || CASE WHEN x.indisunique THEN 'unique' ELSE 'plain' END || ' ' || left(md5(pg_get_indexdef(x.indexrelid)), 12) \
  FROM pg_index x JOIN rel ON rel.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
 UNION ALL SELECT 'trigger ' || rel.name || ' ' || t.tgname || ' ' || left(md5(pg_get_triggerdef(t.oid)), 12) FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid WHERE NOT t.tgisinternal \
 UNION ALL SELECT 'comment ' || rel.name || ' ' || d.objsubid || ' ' || left(md5(d.description), 12) FROM pg_description d JOIN rel ON rel.oid = d.objoid AND d.classoid = 'pg_class'::regclass \
 UNION ALL SELECT 'comment ' || n.nspname || ' schema ' || left(md5(d.description), 12) FROM pg_description d JOIN pg_namespace n ON n.oid = d.objoid AND d.classoid = 'pg_namespace'::regclass WHERE n.oid IN (SELECT oid FROM ns) \
 UNION ALL SELECT 'function ' || p.pronamespace::regnamespace::text || ' ' || replace(p.oid::regprocedure::text, ' ', '%20') || ' ' || pg_get_userbyid(p.proowner) || ' ' || coalesce(p.proacl::text, '-') || ' ' || left(md5(p.prosrc), 12) \
  FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns) AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid) \
 UNION ALL SELECT 'type ' || t.typnamespace::regnamespace::text || ' ' || t.typname || ' ' || t.typtype::text || ' ' || pg_get_userbyid(t.typowner) \
  FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM ns) AND t.typtype IN ('e', 'd', 'r', 'm') AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid) \
) objects \
UNION ALL (SELECT 'applied ' || replace(v::text, ' ', '%20') FROM unnest(CASE WHEN to_regclass('public.django_migrations') IS NULL THEN '{}'::xml[] \
 ELSE xpath('//c/text()', query_to_xml('SELECT app || ''.'' || name AS c FROM public.django_migrations ORDER BY id', false, false, '')) END) WITH ORDINALITY AS u(v, i) ORDER BY i)";

/// How the schema after a migration compares with the schema before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Lines there before and not after (an object removed or changed).
    pub removed: Vec<String>,
    /// Lines there after and not before.
    pub added: Vec<String>,
}

impl Diff {
    pub fn between(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Diff {
        Diff {
            removed: before.difference(after).cloned().collect(),
            added: after.difference(before).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }

    /// What stops the release from before running on the new schema, in
    /// words; empty when the migration only added what that release never
    /// writes: tables, nullable columns or ones with a default, plain
    /// indexes, anything on a new table, views, functions and comments.
    pub fn breaks_the_old_release(&self) -> Vec<String> {
        let kind_and_table = |line: &str| {
            let mut words = line.split(' ');
            (
                words.next().unwrap_or("").to_string(),
                words.next().unwrap_or("").to_string(),
            )
        };
        let tables = |lines: &[String]| -> BTreeSet<String> {
            lines
                .iter()
                .map(|l| kind_and_table(l))
                .filter(|(k, _)| k == "table")
                .map(|(_, t)| t)
                .collect()
        };
        // Tables new overall (not ones whose line changed: an owner, a grant).
        let new_tables: BTreeSet<String> = tables(&self.added)
            .difference(&tables(&self.removed))
            .cloned()
            .collect();
        let mut breaks: Vec<String> = self
            .removed
            .iter()
            .map(|l| format!("changed or removed: {}", shown(l)))
            .collect();
        for line in &self.added {
            let (kind, table) = kind_and_table(line);
            let words: Vec<&str> = line.split(' ').collect();
            let harmless = new_tables.contains(&table)
                || match kind.as_str() {
                    "sequence" | "view" | "function" | "type" | "comment" => true,
                    "column" => words.get(4) == Some(&"null") || words.get(5) == Some(&"default"),
                    "index" => words.get(3) == Some(&"plain"),
                    _ => false,
                };
            let changed = self.removed.iter().any(|r| {
                kind_and_table(r) == (kind.clone(), table.clone())
                    && kind != "column"
                    && kind != "index"
            });
            if !harmless && !changed {
                breaks.push(format!("added: {}", shown(line)));
            }
        }
        breaks
    }
}

/// A line as people read it: names decoded, hashes left out.
pub fn shown(line: &str) -> String {
    let words: Vec<String> = line
        .split(' ')
        .filter(|w| !(w.len() == 12 && w.bytes().all(|b| b.is_ascii_hexdigit())))
        .map(|w| {
            w.replace("%20", " ")
                .replace("%0A", " ")
                .replace("%25", "%")
        })
        .collect();
    words.join(" ")
}

/// The migrations applied after `before` (a prefix of `after`, as each
/// tool appends to its table): `None` when `after` does not start with
/// `before` (a migration was unapplied or the table rewritten).
pub fn applied_since(before: &[String], after: &[String]) -> Option<Vec<String>> {
    let all: BTreeSet<&String> = after.iter().collect();
    if !before.iter().all(|m| all.contains(m)) {
        return None;
    }
    let had: BTreeSet<&String> = before.iter().collect();
    Some(after.iter().filter(|m| !had.contains(m)).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &[&str]) -> BTreeSet<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn only_additions_the_old_release_never_writes_are_harmless() {
        let before = set(&[
            "table lists_item",
            "column lists_item id integer notnull default",
            "column lists_item text varchar(100) notnull nodefault",
        ]);
        let mut after = before.clone();
        after.insert("column lists_item note text null nodefault".into());
        after.insert("index lists_item lists_item_note plain 0123456789ab".into());
        after.insert("table lists_tag".into());
        after.insert("column lists_tag name text notnull nodefault".into());
        after.insert("index lists_tag lists_tag_name unique 0123456789ab".into());
        assert!(Diff::between(&before, &after)
            .breaks_the_old_release()
            .is_empty());

        let mut unique = before.clone();
        unique.insert("index lists_item lists_item_uniq unique 0123456789ab".into());
        assert_eq!(
            Diff::between(&before, &unique).breaks_the_old_release(),
            ["added: index lists_item lists_item_uniq unique"]
        );
        let mut required = before.clone();
        required.insert("column lists_item done bool notnull nodefault".into());
        assert_eq!(
            Diff::between(&before, &required).breaks_the_old_release(),
            ["added: column lists_item done bool notnull nodefault"]
        );
        let mut dropped = before.clone();
        dropped.remove("column lists_item text varchar(100) notnull nodefault");
        assert_eq!(
            Diff::between(&before, &dropped).breaks_the_old_release(),
            ["changed or removed: column lists_item text varchar(100) notnull nodefault"]
        );
    }

    #[test]
    fn migrations_applied_since() {
        let v = |s: &[&str]| s.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            applied_since(&v(&["a.1"]), &v(&["a.1", "a.2", "b.1"])),
            Some(v(&["a.2", "b.1"]))
        );
        assert_eq!(applied_since(&v(&["a.1", "a.2"]), &v(&["a.1"])), None);
        assert_eq!(applied_since(&v(&["a.1"]), &v(&["a.1"])), Some(vec![]));
    }
}

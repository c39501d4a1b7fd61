//! The rows that violate a constraint, read from a database (a
//! rehearsal's copy, a backup or the restored database), one line per row
//! or group of rows, for the message that says what to fix.

use crate::cli::output::Printer;
use crate::data::database::{plain_identifier, Db, Kind, Violation};
use crate::remote::site::Site;

/// Reads the rows that violate `v` from the database at `copy` (a
/// rehearsal's copy, a backup or the restored database), one line each.
pub async fn violating_rows(
    site: &Site,
    db: &Db,
    copy: &str,
    v: &Violation,
    printer: &Printer,
) -> Vec<String> {
    let q = Query {
        site,
        db,
        copy,
        printer,
    };
    match v {
        Violation::Unique {
            table,
            index,
            columns,
        } => {
            q.duplicates(table.as_deref(), index.as_deref(), columns)
                .await
        }
        Violation::NotNull { table, column } => q.nulls(table, column).await,
        Violation::ForeignKey { .. } => q.dangling().await,
    }
}

/// Queries on one database on one host.
struct Query<'a> {
    site: &'a Site,
    db: &'a Db,
    copy: &'a str,
    printer: &'a Printer,
}

impl Query<'_> {
    /// The rows `sql` returns, one line each (fields tab-separated); none
    /// when it fails.
    async fn rows(&self, sql: String) -> Vec<String> {
        let script = self.db.query_script(self.copy, &sql);
        self.site
            .step_always(self.printer, "read the violating rows", None, &script, None)
            .await
            .map(|o| o.stdout.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The row id column.
    fn id(&self) -> &'static str {
        match self.db.engine {
            Kind::Sqlite => "rowid",
            Kind::Postgres => "id",
        }
    }

    /// Groups of rows that share the values of a unique constraint.
    async fn duplicates(
        &self,
        table: Option<&str>,
        index: Option<&str>,
        columns: &[String],
    ) -> Vec<String> {
        if columns.is_empty() || !columns.iter().all(|c| plain_identifier(c)) {
            return Vec::new();
        }
        let table = match table {
            Some(t) => Some(t.to_string()),
            None => {
                self.table_of_index(index.unwrap_or_default(), columns)
                    .await
            }
        };
        let Some(table) = table.filter(|t| plain_identifier(t)) else {
            return Vec::new();
        };
        let cols = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let id = self.id();
        let ids = match self.db.engine {
            Kind::Sqlite => format!("group_concat({id}, ', ')"),
            Kind::Postgres => format!("string_agg({id}::text, ', ' ORDER BY {id})"),
        };
        let rows = self
            .rows(format!(
                "SELECT {cols}, {ids}, count(*) FROM \"{table}\" GROUP BY {cols} HAVING count(*) > 1 ORDER BY {cols} LIMIT 50"
            ))
            .await;
        rows.iter()
            .map(|row| {
                let fields: Vec<&str> = row.split('\t').collect();
                let n = columns.len();
                let values = columns
                    .iter()
                    .zip(&fields)
                    .map(|(c, v)| format!("{c}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "{table}: {values}: {} rows, ids {}",
                    fields.get(n + 1).unwrap_or(&"?"),
                    fields.get(n).unwrap_or(&"?")
                )
            })
            .collect()
    }

    /// PostgreSQL names the index, not the table: the table that has these
    /// columns and whose name the index starts with.
    async fn table_of_index(&self, index: &str, columns: &[String]) -> Option<String> {
        let list = columns
            .iter()
            .map(|c| format!("'{c}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let tables = self
            .rows(format!(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name IN ({list}) GROUP BY table_name HAVING count(DISTINCT column_name) = {}",
                columns.len()
            ))
            .await;
        tables
            .iter()
            .filter(|t| index.starts_with(t.as_str()))
            .max_by_key(|t| t.len())
            .or(tables.first())
            .cloned()
    }

    /// The rows where a NOT NULL column is NULL.
    async fn nulls(&self, table: &str, column: &str) -> Vec<String> {
        if !plain_identifier(table) || !plain_identifier(column) {
            return Vec::new();
        }
        let id = self.id();
        let ids = self
            .rows(format!(
                "SELECT {id} FROM \"{table}\" WHERE \"{column}\" IS NULL ORDER BY {id} LIMIT 50"
            ))
            .await;
        if ids.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "{table}: {column} is NULL in the rows with ids {}",
            ids.join(", ")
        )]
    }

    /// Rows that refer to missing rows (SQLite's foreign key check).
    async fn dangling(&self) -> Vec<String> {
        if self.db.engine != Kind::Sqlite {
            return Vec::new();
        }
        self.rows("PRAGMA foreign_key_check".into())
            .await
            .iter()
            .map(|row| {
                let f: Vec<&str> = row.split('\t').collect();
                format!(
                    "{}: the row with id {} refers to a missing row of {}",
                    f.first().unwrap_or(&"?"),
                    f.get(1).unwrap_or(&"?"),
                    f.get(2).unwrap_or(&"?")
                )
            })
            .collect()
    }
}

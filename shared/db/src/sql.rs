//! Hand-written SQL, checked against the schema.
//!
//! A statement that SeaORM's query builder cannot say is declared once with [`sql!`](crate::sql!)
//! as a named constant of type [`Sql`], which also registers it: [`Sql::all`] lists every
//! statement of every crate linked into the binary, and a test PREPAREs each against a freshly
//! migrated database, so a wrong table, column, type or parameter count fails by name. A
//! statement runs through [`stmt`], with its values.
//!
//! Statuses in SQL come from their enums: bound as values (`OutboxStatus::Dead.as_str()`), or,
//! where the text must hold the literal (a partial index's predicate), spelled with
//! [`quoted!`](crate::quoted!) from the enum's `as_str`.

use sea_orm::{DatabaseBackend, Statement, Value};

#[doc(hidden)]
pub use const_format;
#[doc(hidden)]
pub use inventory;

/// One hand-written statement: its name (module path and constant) and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sql {
    /// `crate::module::CONSTANT`, for the test that checks it.
    pub name: &'static str,
    /// The statement, with `$1`, `$2`, … for its values.
    pub text: &'static str,
}

inventory::collect!(Sql);

impl Sql {
    /// Every statement declared with [`sql!`](crate::sql!) in the crates linked into this
    /// binary.
    pub fn all() -> impl Iterator<Item = &'static Sql> {
        inventory::iter::<Sql>.into_iter()
    }
}

/// `sql` with its `values`, for PostgreSQL.
pub fn stmt(sql: &Sql, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DatabaseBackend::Postgres, sql.text, values)
}

/// Declares hand-written statements as constants of type [`Sql`] and registers them:
///
/// ```ignore
/// orderly_db::sql! {
///     /// Rows of `$1` still pending.
///     PENDING = "SELECT id FROM outbox WHERE task_id = ANY($1) AND status = ",
///               orderly_db::quoted!(OutboxStatus::Pending);
/// }
/// ```
///
/// The text is the concatenation of its parts, each a `&'static str` constant expression.
#[macro_export]
macro_rules! sql {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $($part:expr),+ $(,)?;)+) => {
        $(
            $(#[$meta])*
            $vis const $name: $crate::sql::Sql = $crate::sql::Sql {
                name: concat!(module_path!(), "::", stringify!($name)),
                text: $crate::sql::const_format::concatcp!($($part),+),
            };
            $crate::sql::inventory::submit! { $name }
        )+
    };
}

/// A status (anything with a `const fn as_str`) as a quoted SQL literal, for a statement's
/// text: `quoted!(OutboxStatus::Pending)` is `'pending'`.
#[macro_export]
macro_rules! quoted {
    ($value:expr) => {{
        const VALUE: &str = $value.as_str();
        $crate::sql::const_format::concatcp!("'", VALUE, "'")
    }};
}

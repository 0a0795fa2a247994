//! `daily_reports`: the stored nightly report, one per day of the report time zone;
//! asking again for a day replaces it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "daily_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub report_date: Date,
    /// IANA name of the time zone the day is counted in, e.g. `Europe/Berlin`.
    #[sea_orm(column_type = "Text")]
    pub timezone: String,
    pub generated_at: DateTimeWithTimeZone,
    /// The report as the API serves it (`totals`, `listings`, ...).
    #[sea_orm(column_type = "JsonBinary")]
    pub report: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

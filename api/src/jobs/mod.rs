//! What the admin API and the dashboard ask of the job tables: filtered lists, retries and
//! discards ([`admin`]), and the sentence that explains where a job stands ([`explain`]).

pub mod admin;
pub mod explain;

//! What the admin API and the dashboard ask of the job tables, and nothing else uses: filtered
//! lists, retries and discards ([`jobs`]), and the sentence that explains where a job stands
//! ([`explain`]). A library of the API's own, so that the operators' queries stay out of the
//! request handlers and out of the job platform.

pub mod explain;
pub mod jobs;

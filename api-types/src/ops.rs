//! What the operations endpoints answer (`/readyz`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether the control plane can reach NATS and its database.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub nats: bool,
    pub database: bool,
}

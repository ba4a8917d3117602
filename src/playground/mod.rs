//! The simulated Twenty workspace of the `playground` command: the suite's fake Twenty server
//! (`crates/fake-twenty`) holding sample people, companies and opportunities, and a driver that
//! keeps changing them and sends each change to the service as a signed webhook delivery, losing a
//! share of them as Twenty does. Only that command uses this module; no route of the service does.
//!
//! `workspace` makes the changes (with the records of `samples`), `losses` decides which webhooks
//! are lost, `delivery` signs and sends the others, `driver` paces them.

mod delivery;
mod driver;
mod losses;
mod samples;
mod workspace;

pub use delivery::Sender;
pub use driver::{Driver, Tally};
pub use losses::{DROPPED_SHARE, NO_EVENT_SHARE};
pub use workspace::Workspace;

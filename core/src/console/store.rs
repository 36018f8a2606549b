//! (being written)

use axum::Router;

use super::ConsoleState;

pub(super) fn routes() -> Router<ConsoleState> {
    Router::new()
}

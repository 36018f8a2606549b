//! `keyhold node list`: the cluster's live nodes (admins only).

use clap::Subcommand;

use super::{
    Result,
    context::Ctx,
    output::{self, out, print_json},
};

/// `keyhold node ...`
#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// Lists the live nodes: id, version, addresses, last heartbeat, the leader
    List,
}

const COLUMNS: &[&str] = &[
    "id",
    "version",
    "xks_addr",
    "admin_addr",
    "leader",
    "started_at",
    "heartbeat_at",
];

/// Runs a `node` command.
pub async fn run(ctx: Ctx, c: NodeCmd) -> Result<()> {
    match c {
        NodeCmd::List => {
            let v = ctx.get("/nodes").await?;
            if ctx.json() {
                print_json(&v);
                return Ok(());
            }
            let reachable = if v["registry_reachable"] == true {
                "reachable"
            } else {
                "UNREACHABLE (showing the last nodes seen)"
            };
            out!(
                "store backend {}, answered by node {}, registry {reachable}\n{}",
                output::cell("backend", &v["backend"]),
                output::cell("this_node", &v["this_node"]),
                output::list(&v["nodes"], COLUMNS)
            );
            Ok(())
        }
    }
}

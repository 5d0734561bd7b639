//! `kube-test-apiserver --port P --kubeconfig FILE [--token-auth-file CSV]
//! [--service-endpoint NS/NAME=HOST:PORT]...`:
//! serve the test API server over HTTPS on 127.0.0.1:P (0 picks a free
//! port, printed on stdout) and write an admin kubeconfig for it (with the
//! server's CA). Runs until SIGTERM or SIGINT.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;
use encstr_tests::TestApiServer;

/// A Kubernetes API server for tests (in memory, HTTPS with its own CA, token
/// authentication and RBAC). Never for production.
#[derive(Debug, Parser)]
#[command(name = "kube-test-apiserver", version)]
struct Args {
    /// Port on 127.0.0.1 (0: a free one, printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig for the server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// More users, in kube-apiserver's token file format:
    /// `token,user,uid,"group1,group2"` per line.
    #[arg(long, value_name = "FILE")]
    token_auth_file: Option<PathBuf>,
    /// Where a Service's port is reached, for admission webhooks:
    /// `NS/NAME=HOST:PORT` (repeatable; there is no Service networking).
    #[arg(long, value_name = "NS/NAME=HOST:PORT")]
    service_endpoint: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let server = TestApiServer::start(args.port).await?;
    if let Some(path) = &args.token_auth_file {
        let text = std::fs::read_to_string(path)?;
        server.load_token_file(&text).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
        })?;
    }
    for spec in &args.service_endpoint {
        server
            .set_service_endpoint(spec)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    }
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path)?;
    }
    println!("{}", server.addr().port());
    eprintln!("kube-test-apiserver serving {}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    server.stop().await;
    Ok(())
}

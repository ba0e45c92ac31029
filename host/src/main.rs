use anyhow::{Context, Result};
use clap::Parser;

use aiwebengine::cli::{Cli, Command};

fn main() -> Result<()> {
    let cli = Cli::parse();
    let args = match &cli.command {
        Command::Serve(args) => args,
        tool => std::process::exit(aiwebengine::check::main(tool)?),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers())
        .thread_name("http")
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(serve(cli))
}

async fn serve(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            aiwebengine::logging::init(args.log_format);
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            aiwebengine::run(listener, args.settings(), shutdown_signal()).await
        }
        Command::Check(_) | Command::Routes(_) => unreachable!("run by main"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

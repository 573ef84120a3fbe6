//! The `moscow-time` binary: parse settings, start logging, run the command
//! (serve until SIGTERM, by default). Everything else lives in the library.

use std::process::ExitCode;

use moscow_time::commands;
use moscow_time::config::{Command, ParseError, Settings};
use moscow_time::errors::error_chain;
use moscow_time::shutdown::Signals;
use moscow_time::startup::Application;

fn main() -> ExitCode {
    let (command, settings) = match Settings::from_process() {
        Ok(parsed) => parsed,
        // Usage errors, --help and --version print as clap prints them.
        Err(ParseError::CommandLine(error)) => error.exit(),
        Err(error) => {
            eprintln!("moscow-time: {}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Count => commands::count(&settings, &mut std::io::stdout().lock()),
        Command::SetCount { count, force } => {
            commands::set_count(&settings, count, force, &mut std::io::stdout().lock())
        }
        Command::Serve | Command::Idle => return run(command, settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("moscow-time: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs a long-lived command with logging and an async runtime.
fn run(command: Command, settings: Settings) -> ExitCode {
    // Held to the end: dropping it flushes the last log lines.
    let _logs = match moscow_time::telemetry::init(settings.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("moscow-time: failed to start logging: {error}");
            return ExitCode::from(2);
        }
    };
    let result = actix_web::rt::System::new().block_on(async {
        match command {
            Command::Idle => commands::idle().await,
            _ => {
                let signals = Signals::install()?;
                Application::build(settings)
                    .await?
                    .run_until_signalled(signals)
                    .await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = format!("{error:#}");
            tracing::error!(error = %chain, "moscow-time stopped with an error");
            eprintln!("moscow-time: {chain}");
            ExitCode::FAILURE
        }
    }
}

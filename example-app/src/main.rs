//! Rondo's example application: a basket shop plus the benchmark routes.
//!
//! Run with `cargo run -p example-app` (reads `config.ini` from the current directory), or
//! `cargo run -p example-app -- --config path/to/config.ini`. `--generate-key` prints a new
//! application key for `[app] key` and exits.

use std::process::ExitCode;

use rondo::ConfigLoader;

/// The `mimalloc` feature (on by default) swaps in a faster allocator; see Cargo.toml.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("example-app: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), example_app::BuildError> {
    let Some(path) = config_path()? else {
        // `--generate-key`: the key alone on stdout, so that it can be captured.
        println!("{}", rondo::signed::AppKey::generate()?.to_config_value());
        return Ok(());
    };
    let config = ConfigLoader::new().section("example").load(&path)?;
    rondo::logging::init(&config);
    let listener = rondo::bind(&config.http).await?;
    let app = example_app::build(config).await?;
    rondo::serve(listener, app, rondo::shutdown_signal()).await?;
    Ok(())
}

const USAGE: &str = "usage: example-app [--config FILE]   (default: config.ini)\n       \
                     example-app --generate-key   (prints a new [app] key)";

/// `--config FILE` (or `--config=FILE`), default `config.ini`; `None` for `--generate-key`.
fn config_path() -> Result<Option<String>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = String::from("config.ini");
    while let Some(arg) = args.next() {
        if arg == "--generate-key" {
            return Ok(None);
        } else if arg == "--config" {
            path = args.next().ok_or("--config needs a file name")?;
        } else if let Some(value) = arg.strip_prefix("--config=") {
            path = value.to_owned();
        } else if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        } else {
            return Err(format!("unknown argument {arg:?}\n{USAGE}"));
        }
    }
    Ok(Some(path))
}

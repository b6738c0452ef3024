//! The `relay` command line: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use relay::config::{Config, LogFormat};

/// A Pusher-compatible channels server.
#[derive(Debug, Parser)]
#[command(name = "relay", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Validate a configuration file without serving.
    CheckConfig {
        /// The file to check (default: --config, $RELAY_CONFIG or ./config.toml).
        path: Option<PathBuf>,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Rotate and show an app's key and secret.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read an app's security events and resolve them (which lifts a lockdown).
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Ask a running server's GET /ready: exit 0 when it answers 200, 1 otherwise (a
    /// container health check that needs no curl).
    Health(HealthArgs),
    /// Print a new random secret (256 bits, hex).
    Secret,
    /// Make new app credentials.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage the browser console's admins.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print an [[admins]] block for a new admin, reading the password from stdin, with a new
    /// TOTP secret (as an environment line) and its otpauth:// URI for an authenticator app.
    Add {
        /// The name the admin signs in with.
        #[arg(long)]
        name: String,
        /// viewer (sees) or admin (sees and acts).
        #[arg(long, default_value = "viewer", value_parser = ["viewer", "admin"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Print a complete [[apps]] block with a new key and secret, and its ${VAR} variant.
    New {
        /// The app's id (letters, digits, - and _; digits for the Python SDK).
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// Configuration file whose [server] host and port to ask (default: as for serving,
    /// --config before the command, $RELAY_CONFIG or ./config.toml).
    #[arg(long, conflicts_with = "url")]
    config: Option<PathBuf>,
    /// Port to ask, overriding [server] port.
    #[arg(long, conflicts_with = "url")]
    port: Option<u16>,
    /// Ask this URL instead of reading a configuration (plain http), e.g.
    /// http://127.0.0.1:6001/ready.
    #[arg(long)]
    url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SecurityCommand {
    /// List the app's security events, newest first.
    Events {
        /// The app's id.
        #[arg(long)]
        app: String,
        /// Only this kind (auth_failure, token_leaked, …).
        #[arg(long)]
        kind: Option<String>,
        /// Only this severity or graver: info, warning or critical.
        #[arg(long)]
        severity: Option<String>,
        /// Only events last seen within this long: 1h, 30m, 7d or seconds.
        #[arg(long)]
        since: Option<String>,
        /// Only events not resolved yet.
        #[arg(long)]
        unresolved: bool,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = relay::security_cli::DEFAULT_LIMIT)]
        limit: usize,
    },
    /// Resolve the app's unresolved events, or one of them; once no unresolved critical event
    /// is left, the app's lockdown is lifted (running servers pick it up within seconds).
    Resolve {
        /// The app's id.
        #[arg(long)]
        app: String,
        /// The event's id (from `security events`); absent: every unresolved event.
        event_id: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Replace the app's secret now (running servers pick it up within seconds); the
    /// replaced pair keeps working for the grace period.
    Rotate {
        /// The app's id.
        #[arg(long)]
        app: String,
        /// Replace the key too (a leaked key); the old key keeps working for the grace.
        #[arg(long)]
        key: bool,
        /// How long the replaced pair keeps working: 24h, 30m or seconds (default: the
        /// app's rotation.grace, else 24h).
        #[arg(long)]
        grace: Option<String>,
    },
    /// Print the current key and secret, and the previous pairs still in their grace with
    /// their uses (the only command that prints a secret).
    Show {
        /// The app's id.
        #[arg(long)]
        app: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new token: prints it once, and the [[apps.tokens]] block to add to the config.
    Create {
        /// The app's id.
        #[arg(long)]
        app: String,
        /// A name for the token (unique per app).
        #[arg(long)]
        name: String,
        /// A scope it may use (repeat for several; none: full access).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// How long it is valid: 90d, 12h, 30m or seconds (absent: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List an app's tokens with their use and whether they are revoked.
    List {
        /// The app's id.
        #[arg(long)]
        app: String,
    },
    /// Revoke a token: running servers refuse it within seconds, without a restart.
    Revoke {
        /// The app's id.
        #[arg(long)]
        app: String,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Configuration file.
    #[arg(long, env = "RELAY_CONFIG", default_value = "config.toml")]
    config: PathBuf,
    /// Address to bind, overriding [server] host.
    #[arg(long)]
    host: Option<String>,
    /// Port to bind, overriding [server] port (0 picks a free port).
    #[arg(long)]
    port: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Serving logs as its configuration says, once it has read it; the other commands write
    // plain text.
    if !matches!(cli.command, None | Some(Command::Serve(_))) {
        relay::logging::init(LogFormat::Text, "info");
    }
    match cli.command {
        Some(Command::CheckConfig { path }) => {
            // `relay --config FILE check-config` checks FILE, not ./config.toml.
            let path = path.unwrap_or(cli.serve.config);
            // The guard reads the country database: a broken one is a problem of the config.
            let checked = Config::load(&path)
                .map_err(|error| error.to_string())
                .and_then(|config| {
                    relay::guard::Guard::from_config(&config)
                        .map(|_| config)
                        .map_err(|error| format!("{}: {error}", path.display()))
                });
            match checked {
                Ok(config) => {
                    print_warnings(&config);
                    println!("{}: ok ({} apps)", path.display(), config.apps.len());
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error),
            }
        }
        Some(Command::Admin(AdminCommand::Add { name, role })) => add_admin(&name, &role),
        Some(Command::Secret) => {
            println!("{}", relay::secrets_cli::secret());
            ExitCode::SUCCESS
        }
        Some(Command::App(AppCommand::New { id })) => match relay::secrets_cli::app_block(&id) {
            Ok(block) => {
                print!("{block}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Some(Command::Token(TokenCommand::Create {
            app,
            name,
            scopes,
            expires,
        })) => create_token(&cli.serve.config, &app, &name, &scopes, expires.as_deref()),
        Some(Command::Token(TokenCommand::List { app })) => {
            with_store(&cli.serve.config, |config, store| {
                for line in relay::token_cli::list(config, store, &app)? {
                    println!("{line}");
                }
                Ok(())
            })
        }
        Some(Command::Token(TokenCommand::Revoke { app, name })) => {
            with_store(&cli.serve.config, |config, store| {
                let now = std::time::SystemTime::now();
                if relay::token_cli::revoke(config, store, &app, &name, now)? {
                    println!("revoked {name:?}; running servers refuse it within a few seconds");
                } else {
                    println!("{name:?} was already revoked");
                }
                Ok(())
            })
        }
        Some(Command::Keys(KeysCommand::Rotate { app, key, grace })) => {
            with_store(&cli.serve.config, |config, store| {
                let now = std::time::SystemTime::now();
                let rotated =
                    relay::keys_cli::rotate(config, store, &app, key, grace.as_deref(), now)?;
                println!(
                    "rotated app {app:?} to generation {} (key {}); the previous pair works until {}",
                    rotated.generation,
                    rotated.key,
                    humantime::format_rfc3339_seconds(rotated.previous_valid_until)
                );
                println!(
                    "running servers use the new pair within a few seconds; `relay keys show --app {app}` prints its secret"
                );
                if let Some(notice) = rotated.notice {
                    match actix_web::rt::System::new().block_on(notice.send()) {
                        Ok(status) => println!("rotation notice delivered ({status})"),
                        Err(error) => eprintln!("relay: rotation notice not delivered: {error}"),
                    }
                }
                Ok(())
            })
        }
        Some(Command::Keys(KeysCommand::Show { app })) => {
            with_store(&cli.serve.config, |config, store| {
                let now = std::time::SystemTime::now();
                for line in relay::keys_cli::show(config, store, &app, now)? {
                    println!("{line}");
                }
                Ok(())
            })
        }
        Some(Command::Security(command)) => security(&cli.serve.config, command),
        Some(Command::Health(args)) => health(args, cli.serve),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    // Read as every reload reads it: the file, then the command line's overrides.
    let source = relay::reload::ConfigSource {
        path: args.config.clone(),
        host: args.host,
        port: args.port,
    };
    let config = match source.load() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    relay::logging::init(config.log_format, config.log_level.as_str());
    for secret in config.secret_values() {
        relay::logging::redaction::know(secret);
    }
    print_warnings(&config);
    raise_open_file_limit();
    match actix_web::rt::System::new().block_on(relay::server::serve(config, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// `relay health`: the server's address comes from `--url`, or from the configuration with
/// the same overrides serving takes (`relay --config C --port N health` asks what
/// `relay --config C --port N` serves).
fn health(args: HealthArgs, serve: ServeArgs) -> ExitCode {
    use relay::health_cli::{self, ReadyUrl};
    let url = match args.url {
        Some(text) => match ReadyUrl::parse(&text) {
            Ok(url) => url,
            Err(error) => return fail(&error),
        },
        None => {
            let config = match Config::load(&args.config.unwrap_or(serve.config)) {
                Ok(config) => config,
                Err(error) => return fail(&error),
            };
            let host = serve
                .host
                .unwrap_or_else(|| config.server.host.as_str().to_owned());
            let port = args.port.or(serve.port).unwrap_or(config.server.port);
            ReadyUrl::for_server(&host, port)
        }
    };
    match health_cli::check(&url, health_cli::TIMEOUT) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Runs `command` with the configuration at `path` and its state store.
fn with_store(
    path: &std::path::Path,
    command: impl FnOnce(&Config, &dyn relay::store::Store) -> Result<(), Box<dyn std::error::Error>>,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let store = match relay::store::open(&config) {
        Ok(store) => store,
        Err(error) => return fail(&error),
    };
    match command(&config, store.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// `relay security …`, which opens the state store only if its file exists.
fn security(path: &std::path::Path, command: SecurityCommand) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let now = std::time::SystemTime::now();
    let lines = match command {
        SecurityCommand::Events {
            app,
            kind,
            severity,
            since,
            unresolved,
            limit,
        } => {
            let request = relay::security_cli::EventsRequest {
                app: &app,
                kind: kind.as_deref(),
                severity: severity.as_deref(),
                since: since.as_deref(),
                unresolved,
                limit,
            };
            relay::security_cli::events(&config, &request, now)
        }
        SecurityCommand::Resolve { app, event_id } => {
            relay::security_cli::resolve(&config, &app, event_id, now)
        }
    };
    match lines {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn create_token(
    path: &std::path::Path,
    app: &str,
    name: &str,
    scopes: &[String],
    expires: Option<&str>,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let request = relay::token_cli::CreateRequest {
        app,
        name,
        scopes,
        expires,
    };
    match relay::token_cli::create(&config, &request, std::time::SystemTime::now()) {
        Ok(created) => {
            println!("{}", created.token);
            eprintln!(
                "relay: the token above is shown only this once; add this block under app {app:?} in {}:\n",
                path.display()
            );
            eprintln!("{}", created.block);
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

/// `relay admin add`: the password from stdin (a prompt on stderr when it is a terminal; the
/// typing is not hidden, so pipe it in where that matters), the block and the secrets out.
fn add_admin(name: &str, role: &str) -> ExitCode {
    use std::io::{BufRead, IsTerminal, Write};
    let role = if role == "admin" {
        relay::config::AdminRole::Admin
    } else {
        relay::config::AdminRole::Viewer
    };
    if std::io::stdin().is_terminal() {
        eprint!("Password for {name}: ");
        let _ = std::io::stderr().flush();
    }
    let mut password = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut password) {
        return fail(&format!("cannot read the password from stdin: {error}"));
    }
    let password = password.trim_end_matches(['\r', '\n']);
    match relay::admin_cli::add(name, role, password) {
        Ok(added) => {
            println!("{}", added.block);
            println!("{}", added.environment);
            println!("{}", added.provisioning_uri);
            eprintln!(
                "relay: add the block to config.toml, the {} line to the server's environment (or .env), and open the otpauth:// URI in an authenticator app; the secret is shown only this once",
                added.environment.split('=').next().unwrap_or("TOTP")
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

/// Every connection is a file descriptor: raise the soft limit to the hard one, as servers
/// that hold many sockets do (the hard limit is the administrator's to set).
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!("open-file limit: {limit}"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
}

fn print_warnings(config: &Config) {
    for warning in config
        .warnings()
        .into_iter()
        .chain(config.credential_warnings())
    {
        tracing::warn!("{warning}");
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    for line in error.to_string().lines() {
        eprintln!("relay: {line}");
    }
    ExitCode::FAILURE
}

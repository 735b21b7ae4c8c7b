//! The `p2pchat` binary: command line to configuration, logging, sockets, the loop, and
//! an exit status (0 clean stop, 1 runtime error, 2 usage error).

use std::fs::OpenOptions;
use std::io;
use std::process::ExitCode;

use log::{debug, info, warn};
use simplelog::{ConfigBuilder, WriteLogger};

use p2pchat::cli::{self, Env, Parsed};
use p2pchat::config::Config;
use p2pchat::config::Secret;
use p2pchat::daemon::{self, PidFile};
use p2pchat::driver::{self, Driver, Listeners};
use p2pchat::keyfile;
use p2pchat::proto::Node;
use p2pchat::wire::text::describe_io_error;

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args_os().skip(1), &Env::current()) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::NewNetworkKey(path)) => {
            return match keyfile::new_network_key(&path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("p2pchat: {err}");
                    ExitCode::from(1)
                }
            };
        }
        Err(err) => {
            eprintln!("p2pchat: {err}\nTry 'p2pchat --help' for more information.");
            return ExitCode::from(2);
        }
    };
    match run(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("p2pchat: {err}");
            ExitCode::from(1)
        }
    }
}

fn run(mut config: Config) -> io::Result<()> {
    init_logging(&config)?;
    // Keys first: a refused key file is reported before anything is bound.
    config.node.identity = keyfile::identity(&config.key_file)?;
    if let (Some(irc), Some(path)) = (&mut config.node.irc, &config.irc_password_file) {
        irc.password = Some(keyfile::password(path)?);
    }
    config.node.network_key = (config.network_key_file.as_deref())
        .map(keyfile::network_key)
        .transpose()?;
    match daemon::raise_open_files_limit() {
        Ok(limit) => debug!("open files limit: {limit}"),
        Err(err) => warn!(
            "cannot raise the open files limit: {}",
            describe_io_error(&err)
        ),
    }
    let (listeners, socket_file) = Listeners::bind(
        config.listen.as_deref(),
        config.irc_listen.as_deref(),
        &config.socket,
        config.socket_mode,
    )?;
    config.node.listen_addr = listeners.peer_addr()?;
    if let Some(irc) = &mut config.node.irc {
        irc.addr = listeners.irc_addr()?;
    }
    let mut detached = if config.daemon {
        Some(daemon::detach()?)
    } else {
        None
    };
    let served = serve(&config, listeners, &mut detached);
    if let (Err(err), Some(detached)) = (&served, detached) {
        detached.fail(&err.to_string());
    }
    drop(socket_file);
    served
}

/// Runs the node until a stop signal, telling a waiting parent once it serves.
fn serve(
    config: &Config,
    listeners: Listeners,
    detached: &mut Option<daemon::Detached>,
) -> io::Result<()> {
    let _pidfile = config.pidfile.as_deref().map(PidFile::create).transpose()?;
    let mut node_config = config.node.clone();
    node_config.random = Secret(driver::random_bytes()?);
    node_config.hash_seed = u64::from_ne_bytes(driver::random_bytes()?);
    node_config.epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| io::Error::other("the clock is before 1970"))?
        .as_nanos()
        .try_into()
        .map_err(|_| io::Error::other("the clock is past 2554"))?;
    let node = Node::new(node_config, std::time::Instant::now());
    let id = node.id();
    let driver = Driver::new(node, listeners)?;
    if let Some(detached) = detached.take() {
        detached.ready()?;
    }
    let peers = config
        .node
        .listen_addr
        .map_or_else(|| "no peers".to_owned(), |addr| format!("peers on {addr}"));
    info!(
        "node {id} ({}) serving {peers}, clients on {}",
        config.node.nick,
        config.socket.display()
    );
    let signal = driver.run()?;
    info!("stopping on {signal}");
    Ok(())
}

fn init_logging(config: &Config) -> io::Result<()> {
    let log_config = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let sink: Box<dyn io::Write + Send> = match &config.log_file {
        Some(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "cannot open log file {}: {}",
                            path.display(),
                            describe_io_error(&err)
                        ),
                    )
                })?,
        ),
        None => Box::new(io::stderr()),
    };
    WriteLogger::init(config.log_level, log_config, sink)
        .map_err(|err| io::Error::other(format!("cannot start logging: {err}")))
}

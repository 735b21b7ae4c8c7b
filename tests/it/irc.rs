//! The IRC front end, driven by real IRC clients and by raw connections.
//!
//! - Three real clients from Debian's packages, each on one node while a control client
//!   is on another: sic, a minimal one on standard input and output; irssi, a full one
//!   in a tmux server of its own, typed into with `send-keys`, whose channel log is
//!   what its user sees; weechat-headless, with its fifo and logger plugins. Each sees
//!   history played back on joining, the nick list, lines both ways, and a member of
//!   the mesh joining and leaving.
//! - Raw connections, for what a client shows only in passing: registration held by
//!   `CAP` until `CAP END`, the welcome's `ISUPPORT`, history with `@time` tags, the
//!   error numerics (451, 461, 433, 421, 401, 403, 404, 417) after which the client
//!   goes on chatting, the password of a listener, and nicks taken and dropped on
//!   another node coming as JOIN and QUIT.
//!
//! A client program that is not installed fails its test when `CI` is set (`.ci/run`
//! installs them from Debian's packages) and elsewhere says so on stderr and passes.

use std::env;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use tempfile::TempDir;

use crate::util::{arg, temp_dir, wait_for, Client, Node};

const CHANNEL: &str = "#p2pchat";

/// A node with an IRC listener on a free port of loopback, announcing itself every
/// second so that members come and go quickly.
fn irc_node(nick: &str, extra: &[&str]) -> Node {
    let args = [
        &[
            "-n",
            nick,
            "--irc",
            "127.0.0.1:0",
            "--announce-interval",
            "1",
        ],
        extra,
    ];
    Node::start(&args.concat())
}

/// A node without IRC that announces itself every second.
fn plain_node(nick: &str) -> Node {
    Node::start(&["-n", nick, "--announce-interval", "1"])
}

/// Waits until `node` holds `line` (`<NICK> TEXT`) in its history, as it does once
/// the line has reached it.
fn wait_for_history(node: &Node, line: &str) {
    wait_for(&format!("node {} holds {line:?}", node.id()), || {
        let history = node.history(None);
        (history.iter().any(|h| h.line == line))
            .then_some(())
            .ok_or(format!("{history:?}"))
    });
}

/// Waits until the file at `path` has a line that satisfies `matches`; returns it.
fn wait_for_line_in(path: &Path, what: &str, matches: &dyn Fn(&str) -> bool) -> String {
    wait_for(&format!("{} shows {what}", path.display()), || {
        let text = fs::read_to_string(path).unwrap_or_default();
        (text.lines().find(|line| matches(line)))
            .map(str::to_owned)
            .ok_or(text)
    })
}

/// A real IRC client, as its user sees and drives it.
trait Program {
    /// Waits until the client shows a line that satisfies `matches`; returns it.
    fn wait_for_shown(&self, what: &str, matches: &dyn Fn(&str) -> bool) -> String;
    /// Writes `text` to the channel as its user would.
    fn say(&mut self, text: &str);
    /// Asks for the nick list, if the client does not show it on joining.
    fn ask_names(&mut self) {}
}

/// How a client shows what the scenario looks for.
struct Looks {
    /// A chat line from a nick (the first `&str`) with a text (the second); a line
    /// played back counts too.
    line: fn(&str, &str, &str) -> bool,
    /// The nicks of the nick list, from the line that shows them.
    names: fn(&str) -> Option<Vec<String>>,
    /// A member with a nick and node id joining the channel.
    joined: fn(&str, &str, &str) -> bool,
    /// A member with a nick leaving.
    quit: fn(&str, &str) -> bool,
}

/// Whether `program` is installed; when it is not, fails under CI and otherwise says on
/// stderr that `test` is skipped.
fn installed(program: &str, test: &str) -> bool {
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|dir| dir.join(program).is_file()) {
        return true;
    }
    assert!(
        env::var_os("CI").is_none(),
        "CI is set, so {program} must be installed (.ci/run installs it)"
    );
    eprintln!("SKIPPED {test} of tests/it/irc.rs: {program} is not installed");
    false
}

/// The scenario every real client goes through. Node `a` serves IRC, node `b` is
/// linked to it with a control client, ben, who writes a line before the client
/// comes. Once `a` has told that `b` joined, the client `start`s on `a` as `nick`, is
/// played the early line, lists ben, anna (`a`'s own nick) and itself, reads ben's
/// next line, says one that ben reads, then sees cleo's node join and stop.
fn chat_with_a_control_client_on_another_node<P: Program>(
    nick: &str,
    start: impl FnOnce(SocketAddr) -> P,
    looks: &Looks,
) {
    let a = irc_node("anna", &[]);
    let mut watcher = a.client();
    let b = plain_node("ben");
    a.link(&b);
    watcher.expect_line(&format!("* join {} ben", b.id()));
    let mut ben = b.client();
    ben.send("written before the client came");
    wait_for_history(&a, "<ben> written before the client came");

    let mut program = start(a.irc_addr());
    program.wait_for_shown("the early line", &|l| {
        (looks.line)(l, "ben", "written before the client came")
    });
    program.ask_names();
    let names = program.wait_for_shown("the nick list", &|l| (looks.names)(l).is_some());
    let nicks = (looks.names)(&names).expect("a nick list");
    for expected in [nick, "anna", "ben"] {
        assert!(
            nicks.iter().any(|n| n == expected),
            "{expected} is not in {names:?}"
        );
    }

    ben.send("hello over there");
    program.wait_for_shown("ben's line", &|l| {
        (looks.line)(l, "ben", "hello over there")
    });
    program.say("hi ben");
    ben.expect_next(&format!("<{nick}> hi ben"));

    let mut c = plain_node("cleo");
    c.link(&b);
    let id = c.id().to_owned();
    program.wait_for_shown("cleo joining", &|l| (looks.joined)(l, "cleo", &id));
    c.signal("TERM");
    c.wait_exit();
    program.wait_for_shown("cleo leaving", &|l| (looks.quit)(l, "cleo"));
}

/// sic connected to a node's IRC listener: it takes commands (`:m #channel text`) on
/// its standard input and writes everything it reads on its standard output, one
/// line each, which a thread gathers.
struct Sic {
    child: Child,
    input: ChildStdin,
    output: Arc<Mutex<String>>,
}

impl Sic {
    fn start(addr: SocketAddr, nick: &str) -> Sic {
        let port = addr.port().to_string();
        let mut child = Command::new("sic")
            .args(["-h", &addr.ip().to_string(), "-p", &port, "-n", nick])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start sic");
        let input = child.stdin.take().expect("a piped stdin");
        let mut stdout = child.stdout.take().expect("a piped stdout");
        let output = Arc::new(Mutex::new(String::new()));
        let gathered = Arc::clone(&output);
        thread::spawn(move || {
            let mut chunk = [0; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..n]);
                gathered.lock().expect("not poisoned").push_str(&text);
            }
        });
        Sic {
            child,
            input,
            output,
        }
    }
}

impl Program for Sic {
    fn wait_for_shown(&self, what: &str, matches: &dyn Fn(&str) -> bool) -> String {
        wait_for(&format!("sic shows {what}"), || {
            let output = self.output.lock().expect("not poisoned");
            (output.lines().find(|line| matches(line)))
                .map(str::to_owned)
                .ok_or_else(|| output.clone())
        })
    }

    /// One command a line, each awaited before the next: sic reads its input through
    /// stdio's buffer, so a second line that came in the same read would wait there.
    fn say(&mut self, text: &str) {
        writeln!(self.input, ":m {CHANNEL} {text}").expect("cannot write to sic");
    }
}

impl Drop for Sic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// irssi connected to a node's IRC listener, in a tmux server of its own, with its
/// home (configuration and logs) in a temporary directory. Keys are typed into it with
/// `tmux send-keys`; everything a window shows is logged, so its channel log is what
/// its user reads. Its pacing of commands (one every 2.2 s after the first five, for
/// servers' flood limits) is turned off: the test types faster than a person.
struct Irssi {
    home: TempDir,
    /// Whether the channel's window was made the active one.
    in_channel: bool,
}

impl Irssi {
    fn start(addr: SocketAddr, nick: &str) -> Irssi {
        let home = temp_dir();
        let logs = home.path().join("logs");
        let config = format!(
            r#"settings = {{
  core = {{ real_name = "{nick}"; user_name = "{nick}"; nick = "{nick}"; }};
  "irc/core" = {{ cmd_queue_speed = "0msec"; cmds_max_at_once = "1000"; }};
  "fe-common/core" = {{
    autolog = "yes"; autolog_path = "{}/$0.log"; autolog_level = "all";
  }};
}};
"#,
            logs.display()
        );
        fs::write(home.path().join("config"), config).expect("cannot write irssi's config");
        let irssi = Irssi {
            home,
            in_channel: false,
        };
        let command = format!(
            "irssi --home={} -c {} -p {} -n {nick}",
            irssi.home.path().display(),
            addr.ip(),
            addr.port()
        );
        irssi.tmux(&["new-session", "-d", "-x", "200", "-y", "50", &command]);
        irssi
    }

    /// Runs tmux against this irssi's own server, whose socket is in its home.
    fn tmux(&self, args: &[&str]) {
        let status = Command::new("tmux")
            .arg("-S")
            .arg(self.home.path().join("tmux"))
            .args(args)
            .stdin(Stdio::null())
            .status()
            .expect("cannot run tmux");
        assert!(status.success(), "tmux {args:?} failed: {status}");
    }

    /// Types `line` into irssi's input line and presses Enter.
    fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-l", line]);
        self.tmux(&["send-keys", "Enter"]);
    }
}

impl Program for Irssi {
    fn wait_for_shown(&self, what: &str, matches: &dyn Fn(&str) -> bool) -> String {
        let log = self.home.path().join("logs").join(format!("{CHANNEL}.log"));
        wait_for_line_in(&log, what, matches)
    }

    fn say(&mut self, text: &str) {
        // The node joined irssi to the channel, so its window is not the active one.
        if !self.in_channel {
            self.type_line(&format!("/window goto {CHANNEL}"));
            self.in_channel = true;
        }
        self.type_line(text);
    }
}

impl Drop for Irssi {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.home.path().join("tmux"))
            .arg("kill-server")
            .status();
    }
}

/// weechat-headless connected to a node's IRC listener, with its home in a temporary
/// directory: it takes commands for a buffer on its fifo plugin's pipe, and its logger
/// plugin writes each buffer to a file at once.
struct Weechat {
    child: Child,
    home: TempDir,
}

impl Weechat {
    fn start(addr: SocketAddr, nick: &str) -> Weechat {
        let home = temp_dir();
        let commands = format!(
            "/set logger.file.flush_delay 0; \
             /server add p2p {}/{} -notls -nicks={nick} -autojoin={CHANNEL}; /connect p2p",
            addr.ip(),
            addr.port()
        );
        let child = Command::new("weechat-headless")
            .args(["--dir", arg(home.path()), "--run-command", &commands])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start weechat-headless");
        Weechat { child, home }
    }

    /// Writes `command` for the channel's buffer into the fifo plugin's pipe.
    fn command(&self, command: &str) {
        let fifo = self
            .home
            .path()
            .join(format!("weechat_fifo_{}", self.child.id()));
        wait_for("weechat makes its fifo", || {
            (fifo.exists()).then_some(()).ok_or_else(String::new)
        });
        let mut pipe = OpenOptions::new().write(true).open(&fifo);
        let pipe = pipe.as_mut().expect("cannot open weechat's fifo");
        writeln!(pipe, "irc.p2p.{CHANNEL} *{command}").expect("cannot write to weechat's fifo");
    }

    fn log(&self) -> PathBuf {
        (self.home.path().join("logs")).join(format!("irc.p2p.{CHANNEL}.weechatlog"))
    }
}

impl Program for Weechat {
    fn wait_for_shown(&self, what: &str, matches: &dyn Fn(&str) -> bool) -> String {
        wait_for_line_in(&self.log(), what, matches)
    }

    fn say(&mut self, text: &str) {
        self.command(text);
    }

    /// weechat shows only how many nicks there are on joining.
    fn ask_names(&mut self) {
        self.wait_for_shown("the channel joined", &|l| l.contains(" nicks ("));
        self.command("/names");
    }
}

impl Drop for Weechat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sic_on_one_node_chats_with_a_control_client_on_another() {
    if !installed(
        "sic",
        "sic_on_one_node_chats_with_a_control_client_on_another",
    ) {
        return;
    }
    // sic asks for no capability: history comes bracketed, the time in the text.
    let looks = Looks {
        line: |l, nick, text| {
            let Some((_, rest)) = l.split_once(&format!(" <{nick}> ")) else {
                return false;
            };
            let played = rest
                .split_once("Z] ")
                .is_some_and(|(time, t)| time.starts_with('[') && t == text);
            rest == text || played
        },
        names: |l| {
            let nicks = l.split_once(">< 353 (")?.1.split_once("): ")?.1;
            Some(nicks.split(' ').map(str::to_owned).collect())
        },
        joined: |l, nick, _| l.starts_with(&format!("{nick} ")) && l.contains(">< JOIN ("),
        quit: |l, nick| l.starts_with(&format!("{nick} ")) && l.contains(">< QUIT ("),
    };
    chat_with_a_control_client_on_another_node("sid", |addr| Sic::start(addr, "sid"), &looks);
}

#[test]
fn irssi_on_one_node_chats_with_a_control_client_on_another() {
    let test = "irssi_on_one_node_chats_with_a_control_client_on_another";
    if !installed("irssi", test) || !installed("tmux", test) {
        return;
    }
    // irssi asks for server-time: history comes as plain lines stamped by their tags.
    let looks = Looks {
        line: |l, nick, text| l.ends_with(&format!("< {nick}> {text}")),
        names: |l| {
            let nicks: Vec<String> = (l.split("[ ").skip(1))
                .filter_map(|n| Some(n.split_once(']')?.0.to_owned()))
                .collect();
            (!nicks.is_empty()).then_some(nicks)
        },
        joined: |l, nick, id| {
            l.contains(&format!("-!- {nick} [{id}@p2pchat] has joined {CHANNEL}"))
        },
        quit: |l, nick| l.contains(&format!("-!- {nick} [")) && l.contains("has quit"),
    };
    chat_with_a_control_client_on_another_node("ira", |addr| Irssi::start(addr, "ira"), &looks);
}

#[test]
fn weechat_on_one_node_chats_with_a_control_client_on_another() {
    let test = "weechat_on_one_node_chats_with_a_control_client_on_another";
    if !installed("weechat-headless", test) {
        return;
    }
    // weechat asks for server-time too; its log is tab-separated: time, nick, text.
    let looks = Looks {
        line: |l, nick, text| l.ends_with(&format!("\t{nick}\t{text}")),
        names: |l| {
            let nicks = l
                .split_once(&format!("Nicks {CHANNEL}: ["))?
                .1
                .strip_suffix(']')?;
            Some(nicks.split(' ').map(str::to_owned).collect())
        },
        joined: |l, nick, id| l.contains(&format!("\t-->\t{nick} ({id}@p2pchat) has joined")),
        quit: |l, nick| l.contains(&format!("\t<--\t{nick} (")) && l.contains("has quit"),
    };
    chat_with_a_control_client_on_another_node("wes", |addr| Weechat::start(addr, "wes"), &looks);
}

/// Sends `NICK` and `USER` on `irc` and reads its welcome, up to the end of the
/// channel's nick list.
fn register(irc: &mut Client, nick: &str) -> Vec<String> {
    irc.send(&format!("NICK {nick}"));
    irc.send(&format!("USER {nick} 0 * :{nick}"));
    irc.read_until("the end of NAMES", |l| l.contains(" 366 "))
}

#[test]
fn registration_waits_for_cap_end_then_welcomes_joins_and_plays_back_with_times() {
    let a = irc_node("anna", &[]);
    let mut anna = a.client();
    anna.send("first of all");
    wait_for_history(&a, "<anna> first of all");

    let mut irc = Client::connect_irc(a.irc_addr());
    irc.send("CAP LS 302");
    irc.expect_next(":p2pchat CAP * LS :server-time");
    irc.send("NICK zed");
    irc.send("USER zed 0 * :Zed");
    irc.send("PING :held");
    // Nothing comes between the answer to CAP LS and the PONG: CAP END is awaited.
    irc.expect_next(":p2pchat PONG p2pchat :held");
    irc.send("CAP REQ :server-time");
    irc.expect_next(":p2pchat CAP * ACK :server-time");
    irc.send("CAP END");
    let welcome = irc.read_until("the end of NAMES", |l| l.contains(" 366 "));
    assert_eq!(
        welcome[0],
        ":p2pchat 001 zed :Welcome to the p2pchat mesh, zed"
    );
    let isupport = (welcome.iter().find(|l| l.starts_with(":p2pchat 005 zed ")))
        .unwrap_or_else(|| panic!("no 005 in {welcome:#?}"));
    for token in [
        "CHANTYPES=#",
        "PREFIX=",
        "NICKLEN=32",
        "CASEMAPPING=ascii",
        "NETWORK=p2pchat",
        "UTF8ONLY",
    ] {
        assert!(
            isupport.split(' ').any(|t| t == token),
            "{token} not in {isupport}"
        );
    }
    for code in ["002", "003", "004", "375", "372", "376", "332", "353"] {
        let numeric = format!(":p2pchat {code} zed ");
        assert!(
            welcome.iter().any(|l| l.starts_with(&numeric)),
            "no {code} in {welcome:#?}"
        );
    }
    let join = format!(":zed!{}@p2pchat JOIN {CHANNEL}", a.id());
    assert!(welcome.contains(&join), "no {join} in {welcome:#?}");
    let names = (welcome.iter().find(|l| l.contains(" 353 ")))
        .expect("a 353 line")
        .rsplit(':')
        .next()
        .expect("a trailing parameter");
    let mut nicks: Vec<&str> = names.split(' ').collect();
    nicks.sort_unstable();
    assert_eq!(nicks, ["anna", "zed"]);

    let played = irc.next_line();
    let (tag, line) = played.split_once(' ').expect("a tag and a message");
    let time = tag
        .strip_prefix("@time=")
        .unwrap_or_else(|| panic!("{played}"));
    assert!(time.len() == 24 && time.ends_with('Z'), "{played}");
    assert_eq!(
        line,
        format!(":anna!{}@p2pchat PRIVMSG {CHANNEL} :first of all", a.id())
    );

    anna.send("and then");
    let live = irc.next_line();
    assert!(
        live.starts_with("@time=") && live.ends_with(" PRIVMSG #p2pchat :and then"),
        "{live}"
    );
}

#[test]
fn mistakes_get_the_numerics_clients_expect_and_the_client_goes_on() {
    let a = irc_node("anna", &[]);
    let mut holder = a.client();
    holder.send("/nick held");
    holder.expect_next("* nick held");

    let mut irc = Client::connect_irc(a.irc_addr());
    irc.send("PRIVMSG #p2pchat :too early");
    irc.expect_next(":p2pchat 451 * :You have not registered");
    irc.send("USER zed");
    irc.expect_next(":p2pchat 461 * USER :Not enough parameters");
    irc.send("USER zed 0 * :");
    irc.expect_next(":p2pchat 461 * USER :Not enough parameters");
    irc.send("NICK held");
    irc.expect_next(":p2pchat 433 * held :Nickname is already in use on this node");
    register(&mut irc, "zed");

    let mistakes: [(&[u8], &str); 10] = [
        (b"FROB", ":p2pchat 421 zed FROB :Unknown command"),
        (b"JOIN", ":p2pchat 461 zed JOIN :Not enough parameters"),
        (
            b"PRIVMSG bob :psst",
            ":p2pchat 401 zed bob :No such nick/channel: the mesh has one channel and no private messages",
        ),
        (
            b"JOIN #other",
            ":p2pchat 403 zed #other :No such channel: this network has one",
        ),
        (
            b"TOPIC #other",
            ":p2pchat 403 zed #other :No such channel: this network has one",
        ),
        (b"NAMES #other", ":p2pchat 366 zed #other :End of /NAMES list"),
        (
            &[b"PRIVMSG #p2pchat :".as_slice(), &[b'x'; 600]].concat(),
            ":p2pchat 417 zed :Input line was too long",
        ),
        (
            &[b"PRIVMSG #p2pchat :".as_slice(), &[b'x'; 5000]].concat(),
            ":p2pchat 417 zed :Input line was too long",
        ),
        (
            b"PRIVMSG #p2pchat :\xff\xfe not UTF-8",
            ":p2pchat FAIL * INVALID_UTF8 :line is not valid UTF-8",
        ),
        (b"NICK held", ":p2pchat 433 zed held :Nickname is already in use on this node"),
    ];
    for (line, expected) in mistakes {
        irc.send_raw(&[line, b"\r\n"].concat());
        irc.expect_next(expected);
    }
    // None of them reached the channel: the next line the holder reads is this one.
    irc.send("PRIVMSG #p2pchat :still here");
    holder.expect_next("<zed> still here");

    irc.send("PART #p2pchat");
    irc.expect_next(&format!(":zed!{}@p2pchat PART {CHANNEL}", a.id()));
    irc.send("PRIVMSG #p2pchat :after parting");
    irc.expect_next(":p2pchat 404 zed #p2pchat :Cannot send to channel: JOIN it first");
    irc.send("QUIT :bye");
    irc.expect_next("ERROR :Closing link (quit)");
    irc.expect_eof();
}

#[test]
fn a_listener_with_a_password_welcomes_only_who_gives_it() {
    let dir = temp_dir();
    let file = dir.path().join("irc.password");
    fs::write(&file, "sesame\n").expect("cannot write the password file");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("cannot chmod");
    let a = irc_node("anna", &["--irc-password-file", arg(&file)]);

    let mut wrong = Client::connect_irc(a.irc_addr());
    wrong.send("PASS barley");
    wrong.send("NICK zed");
    wrong.send("USER zed 0 * :Zed");
    wrong.expect_next(":p2pchat 464 * :Password incorrect");
    wrong.expect_next("ERROR :Closing link (password incorrect)");
    wrong.expect_eof();

    let mut none = Client::connect_irc(a.irc_addr());
    none.send("NICK zed");
    none.send("USER zed 0 * :Zed");
    none.expect_next(":p2pchat 464 * :Password incorrect");

    let mut right = Client::connect_irc(a.irc_addr());
    right.send("PASS sesame");
    let welcome = register(&mut right, "zed");
    assert_eq!(
        welcome[0],
        ":p2pchat 001 zed :Welcome to the p2pchat mesh, zed"
    );
}

#[test]
fn a_nick_taken_and_dropped_on_another_node_comes_as_join_and_quit() {
    let a = irc_node("anna", &[]);
    let mut watcher = a.client();
    let b = plain_node("ben");
    a.link(&b);
    watcher.expect_line(&format!("* join {} ben", b.id()));
    let mut irc = Client::connect_irc(a.irc_addr());
    register(&mut irc, "zed");

    let mut bea = b.client();
    bea.send("/nick bea");
    bea.expect_next("* nick bea");
    let joined = format!(":bea!{}@p2pchat JOIN {CHANNEL}", b.id());
    irc.read_until(&joined, |l| l == joined);
    drop(bea);
    let quit = format!(":bea!{}@p2pchat QUIT :left", b.id());
    irc.read_until(&quit, |l| l == quit);
}

//! What a node does for its local clients: acting on their lines and commands,
//! replies and events, pausing them under backpressure, and letting them leave.

use std::fmt;
use std::mem;
use std::time::Instant;

use crate::wire::control::{self, Command, HELP};
use crate::wire::text;

use crate::proto::cause::Cause;
use crate::proto::conn::{Conn, Role};
use crate::proto::ids::ConnId;
use crate::proto::timers::Timer;

use super::Node;

impl Node {
    /// An event for every client: a `*` line, a notice in the IRC channel.
    pub(super) fn notify_clients(&mut self, now: Instant, event: fmt::Arguments<'_>) {
        self.irc_event(&event.to_string());
        self.line_buf.clear();
        control::write_info(&mut self.line_buf, event);
        self.send_line_to_clients(now, None);
    }

    /// An event for the control clients alone: IRC clients learn it otherwise.
    pub(super) fn notify_control_clients(&mut self, now: Instant, event: fmt::Arguments<'_>) {
        self.irc_lines.clear();
        self.line_buf.clear();
        control::write_info(&mut self.line_buf, event);
        self.send_line_to_clients(now, None);
    }

    pub(super) fn reply(&mut self, now: Instant, id: ConnId, reply: fmt::Arguments<'_>) {
        if self.is_irc(id) {
            return self.irc_notice(now, id, &reply.to_string());
        }
        self.line_buf.clear();
        control::write_info(&mut self.line_buf, reply);
        self.send_line_to(now, id);
    }

    pub(super) fn reply_error(&mut self, now: Instant, id: ConnId, error: fmt::Arguments<'_>) {
        if self.is_irc(id) {
            return self.irc_notice(now, id, &error.to_string());
        }
        self.line_buf.clear();
        control::write_error(&mut self.line_buf, error);
        self.send_line_to(now, id);
    }

    fn is_irc(&self, id: ConnId) -> bool {
        matches!(self.get(id).map(|c| &c.role), Some(Role::Client(c)) if c.irc.is_some())
    }

    /// Acts on the complete lines a client has sent, until they run out or congestion
    /// pauses the client; closes a client that has left once its lines are done.
    pub(super) fn read_client_lines(&mut self, now: Instant, id: ConnId) {
        let Some(client) = self.get_mut(id).and_then(Conn::client_mut) else {
            return;
        };
        let mut lines = mem::take(&mut client.lines);
        let mut congested = false;
        loop {
            if self.fx.draining > 0 {
                congested = true;
                break;
            }
            match lines.next_line() {
                Some(Ok(line)) if self.is_irc(id) => self.irc_line(now, id, line),
                Some(Ok(line)) => self.client_line(now, id, line),
                Some(Err(err)) if self.is_irc(id) => self.irc_refused_line(now, id, err),
                Some(Err(err)) => self.reply_error(now, id, format_args!("{err}")),
                None => break,
            }
            if !self.get(id).is_some_and(Conn::is_client) {
                break;
            }
        }
        self.publish_written(now);
        let conn = &mut self.conns[id.slot];
        let client = conn.client_mut().expect("the slot still holds this client");
        client.lines = lines;
        if congested && !client.paused {
            client.paused = true;
            self.paused.push(id);
        }
        if client.eof && !congested {
            self.leave(now, id);
        }
    }

    /// A client is done: it is closed as soon as the replies queued for it are written,
    /// or when the linger time is up if it does not take them.
    pub(super) fn leave(&mut self, now: Instant, id: ConnId) {
        let linger = self.cfg.limits.linger;
        let Some(conn) = self
            .conns
            .get_mut(id.slot)
            .filter(|c| c.id == id && !c.closing)
        else {
            return;
        };
        if conn.queue.is_empty() {
            return self.fx.doom(conn, Cause::ClientLeft);
        }
        let client = conn.client_mut().expect("only clients leave");
        if !client.leaving {
            client.leaving = true;
            self.set_timer(id, Timer::Deadline, Some(now + linger));
        }
    }

    fn client_line(&mut self, now: Instant, id: ConnId, line: &str) {
        let command = match control::parse_command(line) {
            Ok(command) => command,
            Err(err) => return self.reply_error(now, id, format_args!("{err}")),
        };
        match command {
            Command::Say(text) => self.say(now, id, text),
            Command::Nick(nick) => match text::check_nick(nick) {
                Ok(()) => {
                    let client = self.conns[id.slot].client_mut().expect("a client's line");
                    client.nick = nick.to_owned();
                    self.reply(now, id, format_args!("nick {nick}"));
                    self.nicks_changed(now);
                }
                Err(err) => self.reply_error(now, id, format_args!("{err}")),
            },
            Command::Connect(target) => {
                let limit = self.cfg.limits.max_peers;
                if self.linked.len() >= limit {
                    let cause = Cause::TooMany {
                        what: "peers",
                        limit,
                    };
                    self.reply_error(now, id, format_args!("cannot connect to {target}: {cause}"));
                } else if control::is_host_port(target) {
                    self.reply(now, id, format_args!("connecting to {target}"));
                    self.dial(now, target.to_owned(), Some(id));
                } else {
                    self.reply_error(
                        now,
                        id,
                        format_args!("cannot connect to {target}: expected HOST:PORT"),
                    );
                }
            }
            Command::Peers => self.reply_peers(now, id),
            Command::Who => self.reply_who(now, id),
            Command::History(n) => self.reply_history(now, id, n),
            Command::Status => self.reply_status(now, id),
            Command::Help => {
                for line in HELP {
                    self.reply(now, id, format_args!("{line}"));
                }
            }
            Command::Quit => self.leave(now, id),
        }
    }

    fn reply_peers(&mut self, now: Instant, id: ConnId) {
        let lines: Vec<String> = self
            .linked
            .values()
            .map(|&peer| {
                let peer = self.conns[peer.slot].peer().expect("linked is peers");
                let remote = peer.remote().expect("linked peers are up");
                format!(
                    "peer {} {} {} {} {}s",
                    peer.addr_label(),
                    peer.direction,
                    remote.id,
                    remote.nick,
                    now.saturating_duration_since(remote.since).as_secs()
                )
            })
            .collect();
        for line in &lines {
            self.reply(now, id, format_args!("{line}"));
        }
        self.reply(now, id, format_args!("{} peers", lines.len()));
    }

    fn reply_status(&mut self, now: Instant, id: ConnId) {
        let Role::Client(client) = &self.conns[id.slot].role else {
            unreachable!("only clients ask for status");
        };
        let listen = self
            .cfg
            .listen_addr
            .map_or_else(|| "none".to_owned(), |addr| addr.to_string());
        let irc = (self.cfg.irc.as_ref())
            .and_then(|irc| irc.addr)
            .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
        let max_rate = self.cfg.limits.max_rate;
        let logs = self.logs.counters();
        let (max_authors, backlog) = self.logs.limits();
        let lines = [
            format!("id {}", self.id),
            format!("version {}", env!("CARGO_PKG_VERSION")),
            format!("nick {}", client.nick),
            format!("listen {listen}"),
            format!("irc {irc}"),
            format!("peers {}", self.linked.len()),
            format!("target-peers {}", self.cfg.target_peers),
            format!("max-peers {}", self.cfg.limits.max_peers),
            format!("known-addresses {}", self.book.len()),
            format!(
                "discovery {}",
                if self.cfg.discovery { "on" } else { "off" }
            ),
            format!("clients {}", self.clients),
            format!("messages {}", logs.lines),
            format!("duplicates {}", logs.duplicates),
            format!("forged {}", self.forged),
            format!("missing {}", logs.missing),
            format!("refused {}", logs.refused),
            format!("held {}", self.logs.held()),
            format!("authors {}", self.logs.authors()),
            format!("max-authors {max_authors}"),
            format!("backlog-lines {}", self.logs.backlog_lines()),
            format!("backlog-bytes {}", self.logs.backlog_bytes()),
            format!("backlog-max-lines {}", backlog.lines),
            format!("backlog-max-bytes {}", backlog.bytes),
            format!("backlog-max-age {}", backlog.age.as_secs()),
            format!("hop-limit {}", self.cfg.hop_limit),
            format!("broadcast {}", self.cfg.broadcast),
            format!("uptime {}", now.duration_since(self.started).as_secs()),
            format!("max-rate {}", or_off(max_rate.map(|max| max.per_sec))),
            format!("max-burst {}", or_off(max_rate.map(|max| max.burst))),
            format!(
                "rate-dropped {}",
                self.rate.as_ref().map_or(0, |r| r.dropped)
            ),
            format!("key {}", text::hex(self.creds.key())),
            format!(
                "network-key {}",
                if self.cfg.network_key.is_some() {
                    "on"
                } else {
                    "off"
                }
            ),
            format!("prunes {}", self.tree_state.prunes),
            format!("grafts {}", self.tree_state.grafts),
        ];
        for line in &lines {
            self.reply(now, id, format_args!("{line}"));
        }
    }

    /// Lets paused clients' lines through again, in the order they stopped, until a
    /// peer is congested once more.
    pub(super) fn resume_clients(&mut self, now: Instant) {
        let waiting = mem::take(&mut self.paused);
        for (i, &id) in waiting.iter().enumerate() {
            if self.fx.draining > 0 {
                self.paused.extend_from_slice(&waiting[i..]);
                return;
            }
            if let Some(client) = self.get_mut(id).and_then(Conn::client_mut) {
                client.paused = false;
            }
            self.read_client_lines(now, id);
        }
    }
}

/// A setting for `/status`: its value, or `off`.
fn or_off(setting: Option<u32>) -> String {
    setting.map_or_else(|| "off".to_owned(), |value| value.to_string())
}

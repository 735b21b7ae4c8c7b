//! The IRC front end: an IRC connection is a local client like one on the control
//! socket, that speaks IRC. Registration, the one channel that is the whole mesh, its
//! nick list from the member table, history played back on joining, and the replies
//! real clients wait for. The syntax is `wire::irc`'s; what a line does is the same
//! as for any client.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::Instant;

use crate::wire::control::LineError;
use crate::wire::irc::{self, Message};
use crate::wire::lines::Record;
use crate::wire::text::{self, MAX_NICK_LEN};

use crate::proto::conn::{IrcSession, Role};
use crate::proto::ids::{ConnId, NodeId};
use crate::proto::secure::node_id_of;

use super::Node;

/// The server name in every reply.
pub const SERVER: &str = "p2pchat";

/// The host part of every member's prefix.
const HOST: &str = "p2pchat";

/// Lines played back to a client that joins the channel.
const PLAYBACK: usize = 50;

/// The capabilities this server offers.
const CAPS: &str = "server-time";

/// A line from the mesh as IRC clients read it: without and with its time tag.
#[derive(Debug, Default)]
pub(super) struct IrcLines {
    pub plain: Vec<u8>,
    pub tagged: Vec<u8>,
}

impl IrcLines {
    pub fn clear(&mut self) {
        self.plain.clear();
        self.tagged.clear();
    }

    /// The bytes for a client, by whether it asked for `server-time`.
    pub fn for_client(&self, server_time: bool) -> &[u8] {
        if server_time && !self.tagged.is_empty() {
            &self.tagged
        } else {
            &self.plain
        }
    }
}

/// A member's nick as IRC clients see it, and its prefix.
fn prefix(nick: &str, id: NodeId) -> String {
    format!("{}!{id}@{HOST}", irc::irc_nick(nick))
}

/// A chat text as IRC clients write and read it: `/me` is a CTCP ACTION.
fn to_irc_text(text: &str) -> Cow<'_, str> {
    match text.strip_prefix("/me ") {
        Some(action) => Cow::Owned(format!("\u{1}ACTION {action}\u{1}")),
        None => Cow::Borrowed(text),
    }
}

impl Node {
    fn channel(&self) -> &str {
        self.cfg.irc.as_ref().map_or("#p2pchat", |irc| &irc.channel)
    }

    fn session(&mut self, id: ConnId) -> &mut IrcSession {
        let client = self.conns[id.slot].client_mut().expect("an IRC client");
        client.irc.as_deref_mut().expect("an IRC client")
    }

    fn irc_nick_of(&self, id: ConnId) -> String {
        match &self.conns[id.slot].role {
            Role::Client(client) => client.nick.clone(),
            Role::Peer(_) => unreachable!("an IRC client"),
        }
    }

    /// Writes one message for `id` alone.
    fn irc_send(
        &mut self,
        now: Instant,
        id: ConnId,
        prefix: &str,
        command: &str,
        middle: &[&str],
        trailing: Option<&str>,
    ) {
        self.line_buf.clear();
        irc::write(&mut self.line_buf, None, prefix, command, middle, trailing);
        self.send_line_to(now, id);
    }

    /// A numeric reply to `id`: its nick (or `*`) first.
    fn numeric(&mut self, now: Instant, id: ConnId, code: &str, middle: &[&str], trailing: &str) {
        let nick = if self.session(id).registered {
            self.irc_nick_of(id)
        } else {
            "*".to_owned()
        };
        let mut params = vec![nick.as_str()];
        params.extend_from_slice(middle);
        let trailing = Some(trailing).filter(|t| !t.is_empty());
        self.irc_send(now, id, SERVER, code, &params, trailing);
    }

    /// A line from an IRC client.
    pub(super) fn irc_line(&mut self, now: Instant, id: ConnId, line: &str) {
        let message = match Message::parse(line) {
            Ok(message) => message,
            Err(irc::ParseError::Empty) => return,
            Err(irc::ParseError::TooLong(_) | irc::ParseError::TagsTooLong(_)) => {
                return self.irc_too_long(now, id);
            }
            Err(err) => return self.irc_notice(now, id, &format!("line dropped: {err}")),
        };
        let command = message.command.to_ascii_uppercase();
        let registered = self.session(id).registered;
        let params = message.params();
        let need = |n: usize| params.len() >= n;
        match command.as_str() {
            "CAP" => self.irc_cap(now, id, params),
            "PASS" if registered => self.numeric(now, id, "462", &[], "You may not reregister"),
            "PASS" if need(1) => {
                let ok = (self.cfg.irc.as_ref()).and_then(|irc| irc.password.as_deref())
                    == Some(params[0]);
                self.session(id).password_ok = ok;
            }
            "NICK" if need(1) => self.irc_nick(now, id, params[0]),
            "NICK" => self.numeric(now, id, "431", &[], "No nickname given"),
            "USER" if registered => self.numeric(now, id, "462", &[], "You may not reregister"),
            // The real name may hold spaces but not be empty.
            "USER" if need(4) && !params[3].is_empty() => {
                self.session(id).has_user = true;
                self.irc_try_register(now, id);
            }
            "PING" if need(1) => self.irc_send(now, id, SERVER, "PONG", &[SERVER], Some(params[0])),
            "PONG" => {}
            "QUIT" => {
                self.irc_send(now, id, "", "ERROR", &[], Some("Closing link (quit)"));
                self.leave(now, id);
            }
            "PASS" | "USER" | "PING" => {
                self.numeric(now, id, "461", &[&command], "Not enough parameters")
            }
            _ if !registered => self.numeric(now, id, "451", &[], "You have not registered"),
            _ => self.irc_command(now, id, &command, params),
        }
    }

    /// A line over IRC's limit, or over the buffer's, which is far larger.
    fn irc_too_long(&mut self, now: Instant, id: ConnId) {
        self.numeric(now, id, "417", &[], "Input line was too long");
    }

    /// A line the buffer refused: too long, or not UTF-8 (a `FAIL`, as `UTF8ONLY`
    /// in the welcome promises).
    pub(super) fn irc_refused_line(&mut self, now: Instant, id: ConnId, err: LineError) {
        match err {
            LineError::TooLong => self.irc_too_long(now, id),
            LineError::NotUtf8 => {
                let why = Some("line is not valid UTF-8");
                self.irc_send(now, id, SERVER, "FAIL", &["*", "INVALID_UTF8"], why);
            }
        }
    }

    /// The commands of a registered client.
    fn irc_command(&mut self, now: Instant, id: ConnId, command: &str, params: &[&str]) {
        let channel = self.channel().to_owned();
        let ours = |name: &str| irc::nick_eq(name, &channel);
        let need = |n: usize| params.len() >= n;
        match command {
            "JOIN" if need(1) => {
                for name in params[0].split(',') {
                    if ours(name) {
                        if !self.session(id).joined {
                            self.irc_join(now, id);
                        }
                    } else if name != "0" {
                        self.no_such_channel(now, id, name);
                    }
                }
            }
            "PART" if need(1) => {
                for name in params[0].split(',') {
                    if ours(name) && self.session(id).joined {
                        self.session(id).joined = false;
                        let me = prefix(&self.irc_nick_of(id), self.id);
                        self.irc_send(now, id, &me, "PART", &[&channel], params.get(1).copied());
                    } else {
                        self.numeric(now, id, "442", &[name], "You're not on that channel");
                    }
                }
            }
            "PRIVMSG" | "NOTICE" if params.len() < 2 => {
                if command == "PRIVMSG" {
                    let code = if params.is_empty() { "411" } else { "412" };
                    self.numeric(now, id, code, &[], "No recipient or no text given");
                }
            }
            "PRIVMSG" | "NOTICE" => {
                let text = params[1];
                if !ours(params[0]) {
                    if command == "PRIVMSG" {
                        self.numeric(now, id, "401", &[params[0]], "No such nick/channel: the mesh has one channel and no private messages");
                    }
                } else if !self.session(id).joined {
                    self.numeric(
                        now,
                        id,
                        "404",
                        &[&channel],
                        "Cannot send to channel: JOIN it first",
                    );
                } else if let Some(action) = text.strip_prefix("\u{1}ACTION ") {
                    let action = action.strip_suffix('\u{1}').unwrap_or(action);
                    self.say(now, id, &format!("/me {action}"));
                } else if !text.starts_with('\u{1}') {
                    self.say(now, id, text);
                }
            }
            "NAMES" if need(1) => {
                for name in params[0].split(',') {
                    if ours(name) {
                        self.irc_names(now, id);
                    } else {
                        // No error for a channel that does not exist: only the end.
                        self.numeric(now, id, "366", &[name], "End of /NAMES list");
                    }
                }
            }
            "NAMES" => self.irc_names(now, id),
            "TOPIC" if need(1) && !ours(params[0]) => self.no_such_channel(now, id, params[0]),
            "TOPIC" if need(2) => {
                self.numeric(now, id, "482", &[&channel], "The topic is the mesh's own")
            }
            "TOPIC" if need(1) => self.irc_topic(now, id),
            "WHO" => self.irc_who(now, id, params.first().copied().unwrap_or("*")),
            "WHOIS" if need(1) => self.irc_whois(now, id, params[params.len() - 1]),
            "MODE" if need(1) => self.irc_mode(now, id, params),
            "MOTD" => self.irc_motd(now, id),
            "AWAY" if need(1) => {
                self.numeric(now, id, "306", &[], "You have been marked as being away")
            }
            "AWAY" => self.numeric(
                now,
                id,
                "305",
                &[],
                "You are no longer marked as being away",
            ),
            "JOIN" | "PART" | "TOPIC" | "WHOIS" | "MODE" => {
                self.numeric(now, id, "461", &[command], "Not enough parameters")
            }
            _ => self.numeric(now, id, "421", &[command], "Unknown command"),
        }
    }

    fn no_such_channel(&mut self, now: Instant, id: ConnId, name: &str) {
        let why = "No such channel: this network has one";
        self.numeric(now, id, "403", &[name], why);
    }

    fn irc_cap(&mut self, now: Instant, id: ConnId, params: &[&str]) {
        let nick = if self.session(id).registered {
            self.irc_nick_of(id)
        } else {
            "*".to_owned()
        };
        let sub = params
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        match sub.as_str() {
            "LS" => {
                let session = self.session(id);
                session.negotiating |= !session.registered;
                self.irc_send(now, id, SERVER, "CAP", &[&nick, "LS"], Some(CAPS));
            }
            "LIST" => {
                let on = if self.session(id).server_time {
                    CAPS
                } else {
                    ""
                };
                self.irc_send(now, id, SERVER, "CAP", &[&nick, "LIST"], Some(on));
            }
            "REQ" => {
                let wanted = params.get(1).copied().unwrap_or("");
                let known = wanted
                    .split_whitespace()
                    .all(|cap| cap == CAPS || cap == "-server-time");
                if known && !wanted.trim().is_empty() {
                    let session = self.session(id);
                    session.negotiating |= !session.registered;
                    session.server_time = !wanted.contains("-server-time");
                    self.irc_send(now, id, SERVER, "CAP", &[&nick, "ACK"], Some(wanted));
                } else {
                    self.irc_send(now, id, SERVER, "CAP", &[&nick, "NAK"], Some(wanted));
                }
            }
            "END" => {
                self.session(id).negotiating = false;
                self.irc_try_register(now, id);
            }
            _ => self.numeric(now, id, "410", &[&sub], "Invalid CAP command"),
        }
    }

    fn irc_nick(&mut self, now: Instant, id: ConnId, wanted: &str) {
        if !irc::check_irc_nick(wanted, MAX_NICK_LEN) {
            return self.numeric(now, id, "432", &[wanted], "Erroneous nickname");
        }
        let held = (self.conns.iter()).any(|(_, c)| {
            c.id != id
                && c.is_client()
                && matches!(&c.role, Role::Client(other) if irc::nick_eq(&other.nick, wanted)
                    && (other.irc.is_none() || other.irc.as_ref().is_some_and(|s| s.has_nick)))
        });
        if held {
            return self.numeric(
                now,
                id,
                "433",
                &[wanted],
                "Nickname is already in use on this node",
            );
        }
        let old = self.irc_nick_of(id);
        let client = self.conns[id.slot].client_mut().expect("an IRC client");
        client.nick = wanted.to_owned();
        let session = client.irc.as_deref_mut().expect("an IRC client");
        session.has_nick = true;
        if session.registered {
            let from = prefix(&old, self.id);
            self.irc_send(now, id, &from, "NICK", &[], Some(wanted));
            self.nicks_changed(now);
        } else {
            self.irc_try_register(now, id);
        }
    }

    fn irc_try_register(&mut self, now: Instant, id: ConnId) {
        let session = self.session(id);
        if session.registered || session.negotiating || !session.has_nick || !session.has_user {
            return;
        }
        let needs_password = self
            .cfg
            .irc
            .as_ref()
            .is_some_and(|irc| irc.password.is_some());
        if needs_password && !self.session(id).password_ok {
            self.numeric(now, id, "464", &[], "Password incorrect");
            self.irc_send(
                now,
                id,
                "",
                "ERROR",
                &[],
                Some("Closing link (password incorrect)"),
            );
            return self.leave(now, id);
        }
        self.session(id).registered = true;
        let nick = self.irc_nick_of(id);
        let version = concat!("p2pchat-", env!("CARGO_PKG_VERSION"));
        let welcome = format!("Welcome to the p2pchat mesh, {nick}");
        self.numeric(now, id, "001", &[], &welcome);
        self.numeric(
            now,
            id,
            "002",
            &[],
            &format!("Your host is {SERVER}, running {version}"),
        );
        self.numeric(now, id, "003", &[], &format!("This node is {}", self.id));
        self.numeric(now, id, "004", &[SERVER, version, "i", "nt"], "");
        let nicklen = format!("NICKLEN={MAX_NICK_LEN}");
        let chantypes = "CHANTYPES=#";
        let tokens = [
            chantypes,
            "PREFIX=",
            &nicklen,
            "CASEMAPPING=ascii",
            "NETWORK=p2pchat",
            "CHANMODES=,,,nt",
            "UTF8ONLY",
        ];
        self.numeric(now, id, "005", &tokens, "are supported by this server");
        self.irc_motd(now, id);
        self.irc_join(now, id);
        self.nicks_changed(now);
    }

    fn irc_motd(&mut self, now: Instant, id: ConnId) {
        self.numeric(
            now,
            id,
            "375",
            &[],
            &format!("- {SERVER} message of the day"),
        );
        let channel = self.channel().to_owned();
        let lines = [
            format!("- {channel} is the whole mesh: every line reaches every node."),
            format!("- This node is {}; /who lists the members.", self.id),
        ];
        for line in &lines {
            self.numeric(now, id, "372", &[], line);
        }
        self.numeric(now, id, "376", &[], "End of /MOTD command");
    }

    fn irc_join(&mut self, now: Instant, id: ConnId) {
        self.session(id).joined = true;
        let channel = self.channel().to_owned();
        let me = prefix(&self.irc_nick_of(id), self.id);
        self.irc_send(now, id, &me, "JOIN", &[&channel], None);
        self.irc_topic(now, id);
        self.irc_names(now, id);
        self.irc_playback(now, id);
    }

    fn irc_topic(&mut self, now: Instant, id: ConnId) {
        let channel = self.channel().to_owned();
        let topic = format!("p2pchat: {} members", self.members.listed());
        self.numeric(now, id, "332", &[&channel], &topic);
    }

    /// Every nick of the mesh: the members' and this node's clients', each once. A
    /// member whose joining is still being gathered is left out: its JOIN is to come.
    fn irc_nicks(&self, now: Instant) -> Vec<(String, NodeId)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let local = (self.conns.iter()).filter_map(|(_, c)| match &c.role {
            Role::Client(client) if c.is_client() => Some((client.nick.clone(), self.id)),
            _ => None,
        });
        let joining: BTreeSet<NodeId> = self.joined.iter().copied().collect();
        let members = (self.members.live())
            .filter(|(id, _)| !joining.contains(id))
            .flat_map(|(id, m)| m.nicks.iter().map(move |nick| (nick.clone(), id)));
        for (nick, member) in local.chain(members) {
            let shown = irc::irc_nick(&self.nicks.shown(now, &nick, member)).into_owned();
            if seen.insert(irc::fold(&shown)) {
                out.push((shown, member));
            }
        }
        out
    }

    fn irc_names(&mut self, now: Instant, id: ConnId) {
        let channel = self.channel().to_owned();
        let nicks: Vec<String> = self.irc_nicks(now).into_iter().map(|(n, _)| n).collect();
        // As many nicks a line as fit in a message.
        for chunk in nicks.chunks(20) {
            self.numeric(now, id, "353", &["=", &channel], &chunk.join(" "));
        }
        self.numeric(now, id, "366", &[&channel], "End of /NAMES list");
    }

    fn irc_who(&mut self, now: Instant, id: ConnId, mask: &str) {
        let channel = self.channel().to_owned();
        let all = irc::nick_eq(mask, &channel) || mask == "*" || mask == "0";
        for (nick, member) in self.irc_nicks(now) {
            if all || irc::nick_eq(mask, &nick) {
                let user = member.to_string();
                let real = format!("0 key {}", self.member_key(member));
                self.numeric(
                    now,
                    id,
                    "352",
                    &[&channel, &user, HOST, SERVER, &nick, "H"],
                    &real,
                );
            }
        }
        self.numeric(now, id, "315", &[mask], "End of /WHO list");
    }

    fn irc_whois(&mut self, now: Instant, id: ConnId, nick: &str) {
        let found = self
            .irc_nicks(now)
            .into_iter()
            .find(|(n, _)| irc::nick_eq(n, nick));
        match found {
            Some((shown, member)) => {
                let user = member.to_string();
                let real = format!("key {}", self.member_key(member));
                self.numeric(now, id, "311", &[&shown, &user, HOST, "*"], &real);
                let channel = self.channel().to_owned();
                self.numeric(now, id, "319", &[&shown], &channel);
                self.numeric(now, id, "312", &[&shown, SERVER], &format!("node {member}"));
            }
            None => self.numeric(now, id, "401", &[nick], "No such nick"),
        }
        self.numeric(now, id, "318", &[nick], "End of /WHOIS list");
    }

    /// A member's whole key in hex, its fingerprint.
    fn member_key(&self, member: NodeId) -> String {
        (self.members.get(member)).map_or_else(String::new, |m| text::hex(&m.key))
    }

    fn irc_mode(&mut self, now: Instant, id: ConnId, params: &[&str]) {
        let channel = self.channel().to_owned();
        let nick = self.irc_nick_of(id);
        let target = params[0];
        if irc::nick_eq(target, &channel) {
            match params.get(1) {
                None => self.numeric(now, id, "324", &[&channel, "+nt"], ""),
                Some(modes) if modes.trim_start_matches('+') == "b" => {
                    self.numeric(now, id, "368", &[&channel], "End of channel ban list")
                }
                Some(_) => self.numeric(
                    now,
                    id,
                    "482",
                    &[&channel],
                    "Channel modes are the mesh's own",
                ),
            }
        } else if irc::nick_eq(target, &nick) {
            match params.get(1) {
                None => self.numeric(now, id, "221", &[], "+i"),
                Some(modes) if modes.chars().all(|c| matches!(c, '+' | '-' | 'i')) => {
                    let me = prefix(&nick, self.id);
                    self.irc_send(now, id, &me, "MODE", &[&nick], Some(modes));
                }
                Some(_) => self.numeric(now, id, "501", &[], "Unknown MODE flag"),
            }
        } else {
            self.numeric(now, id, "502", &[], "Can't change mode for other users");
        }
    }

    /// The backlog's newest lines for a client that joins: with their times as tags
    /// when it asked for `server-time`, else bracketed and stamped in the text.
    fn irc_playback(&mut self, now: Instant, id: ConnId) {
        let channel = self.channel().to_owned();
        let tagged = self.session(id).server_time;
        let lines = self.logs.history(PLAYBACK);
        if lines.is_empty() {
            return;
        }
        let bracket = format!("***!{HOST}@{HOST}");
        if !tagged {
            self.irc_send(
                now,
                id,
                &bracket,
                "PRIVMSG",
                &[&channel],
                Some("Buffer Playback..."),
            );
        }
        for (record, seq) in lines {
            let parsed = Record::parse(&record).expect("kept records are valid");
            let author = node_id_of(parsed.author);
            let skip = usize::try_from(seq - parsed.first).expect("within a batch");
            let line = parsed.lines().nth(skip).expect("within a batch");
            let nick = self.nicks.shown(now, line.nick, author);
            let from = prefix(&nick, author);
            let text = text::sanitize(line.text);
            self.line_buf.clear();
            if tagged {
                let tag = irc::server_time(line.time_ms);
                irc::write_privmsg_split(
                    &mut self.line_buf,
                    Some(&tag),
                    &from,
                    "PRIVMSG",
                    &channel,
                    &to_irc_text(&text),
                );
            } else {
                let stamped = format!("[{}] {}", text::rfc3339(line.time_ms), to_irc_text(&text));
                irc::write_privmsg_split(
                    &mut self.line_buf,
                    None,
                    &from,
                    "PRIVMSG",
                    &channel,
                    &stamped,
                );
            }
            self.send_line_to(now, id);
        }
        if !tagged {
            self.irc_send(
                now,
                id,
                &bracket,
                "PRIVMSG",
                &[&channel],
                Some("Playback Complete."),
            );
        }
    }

    /// A reply or an event for an IRC client: a notice from the server.
    pub(super) fn irc_notice(&mut self, now: Instant, id: ConnId, text: &str) {
        let nick = self.irc_nick_of(id);
        self.irc_send(now, id, SERVER, "NOTICE", &[&nick], Some(text));
    }

    /// Writes a chat line as IRC clients read it into `irc_lines`.
    pub(super) fn irc_chat(&mut self, author: NodeId, nick: &str, text: &str, time_ms: u64) {
        self.irc_lines.clear();
        if self.irc_clients == 0 {
            return;
        }
        let channel = self.channel().to_owned();
        let from = prefix(nick, author);
        let text = text::sanitize(text);
        let text = to_irc_text(&text);
        let tag = irc::server_time(time_ms);
        irc::write_privmsg_split(
            &mut self.irc_lines.plain,
            None,
            &from,
            "PRIVMSG",
            &channel,
            &text,
        );
        irc::write_privmsg_split(
            &mut self.irc_lines.tagged,
            Some(&tag),
            &from,
            "PRIVMSG",
            &channel,
            &text,
        );
    }

    /// Writes an event as IRC clients read it into `irc_lines`: a notice to the channel.
    pub(super) fn irc_event(&mut self, event: &str) {
        self.irc_lines.clear();
        if self.irc_clients > 0 {
            let channel = self.channel().to_owned();
            irc::write(
                &mut self.irc_lines.plain,
                None,
                SERVER,
                "NOTICE",
                &[&channel],
                Some(event),
            );
        }
    }

    /// Members that joined or went, as IRC clients see them: a JOIN or a QUIT for each
    /// of their nicks.
    pub(super) fn irc_members(
        &mut self,
        now: Instant,
        members: &[(NodeId, Vec<String>)],
        quit: Option<&str>,
    ) {
        if self.irc_clients == 0 {
            return;
        }
        let channel = self.channel().to_owned();
        self.irc_lines.clear();
        for (member, nicks) in members {
            for nick in nicks {
                let from = prefix(&self.nicks.shown(now, nick, *member), *member);
                match quit {
                    None => irc::write(
                        &mut self.irc_lines.plain,
                        None,
                        &from,
                        "JOIN",
                        &[&channel],
                        None,
                    ),
                    Some(why) => irc::write(
                        &mut self.irc_lines.plain,
                        None,
                        &from,
                        "QUIT",
                        &[],
                        Some(why),
                    ),
                }
            }
        }
        if !self.irc_lines.plain.is_empty() {
            self.line_buf.clear();
            self.send_line_to_clients(now, None);
        }
    }
}

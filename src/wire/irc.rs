//! The syntax of the IRC client protocol, for the IRC front end: parsing a client's
//! message (IRCv3 tags, prefix, command, parameters), writing replies that are never
//! longer than IRC allows and never carry a line break, the IRCv3 `server-time` tag, and
//! the mapping of p2pchat nicks onto IRC's nick rules.
//!
//! The grammar is RFC 1459/2812's as <https://modern.ircdocs.horse> restates it, with
//! IRCv3 message tags in front. What a command means (registration, channels, numerics)
//! is the caller's business; cutting a client's bytes into lines is
//! [`LineBuffer`](super::control::LineBuffer)'s. Tags a client sends are kept raw and
//! never unescaped here: the server ignores them.

use std::borrow::Cow;
use std::fmt;

use super::text::rfc3339;

/// Longest message without its tags, in bytes, including the CR LF (RFC 1459).
pub const MAX_LINE_LEN: usize = 512;

/// Longest tags section, in bytes, including the leading `@` and the space after it
/// (IRCv3 message-tags: 4094 bytes of client tags, as many of server tags, a `;`).
pub const MAX_TAGS_LEN: usize = 8191;

/// Most parameters a message holds (RFC 2812).
pub const MAX_PARAMS: usize = 15;

/// Longest line [`Message::parse`] accepts, without its CR LF: what the buffer cutting a
/// client's bytes into lines has to let through.
pub const MAX_INPUT_LEN: usize = MAX_TAGS_LEN + MAX_LINE_LEN - 2;

/// How far back from the end of a piece [`write_privmsg_split`] looks for a space to
/// split at, so that a word is not cut in two when it need not be.
const SPLIT_WINDOW: usize = 40;

/// Why a client's line is not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// Nothing but spaces; clients send these, and they are ignored without a reply.
    Empty,
    /// A NUL, CR or LF inside the line: never part of a message, and the bytes a line
    /// injection is made of.
    BadChar(char),
    /// A tags section of this many bytes (with `@` and the spaces after it), beyond
    /// [`MAX_TAGS_LEN`].
    TagsTooLong(usize),
    /// A message of this many bytes without its tags but with a CR LF, beyond
    /// [`MAX_LINE_LEN`] (the reply is `417 ERR_INPUTTOOLONG`).
    TooLong(usize),
    /// Tags or a prefix and then nothing.
    NoCommand,
    /// A command that is neither letters nor three digits.
    BadCommand(&'a str),
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty line"),
            ParseError::BadChar(c) => write!(f, "line contains {c:?}"),
            ParseError::TagsTooLong(len) => {
                write!(f, "tags are {len} bytes, the limit is {MAX_TAGS_LEN}")
            }
            ParseError::TooLong(len) => write!(
                f,
                "message is {len} bytes with CR LF, the limit is {MAX_LINE_LEN}"
            ),
            ParseError::NoCommand => f.write_str("message has no command"),
            ParseError::BadCommand(command) => {
                write!(f, "command {command:?} is neither letters nor three digits")
            }
        }
    }
}

/// One message from a client, borrowing the line it was parsed from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The tags section without its `@`, raw (still escaped).
    pub tags: Option<&'a str>,
    /// The prefix without its `:`; a client has no business sending one, and it is
    /// parsed only to be skipped.
    pub prefix: Option<&'a str>,
    /// As the client wrote it; compare it with [`Message::is`].
    pub command: &'a str,
    /// The first `len` are the parameters; the rest stay empty.
    params: [&'a str; MAX_PARAMS],
    len: usize,
}

impl<'a> Message<'a> {
    /// Parses a line without its CR LF.
    ///
    /// Runs of spaces count as one, before and after every part. A parameter starting
    /// with `:` is the last and takes the rest of the line, spaces included, and so does
    /// the fifteenth, with or without a `:`, as RFC 2812's grammar has it: no parameter
    /// is dropped, and none is an error.
    pub fn parse(line: &'a str) -> Result<Message<'a>, ParseError<'a>> {
        if let Some(c) = line.chars().find(|c| matches!(c, '\0' | '\r' | '\n')) {
            return Err(ParseError::BadChar(c));
        }
        let mut rest = skip_spaces(line);
        if rest.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut tags = None;
        if let Some(after) = rest.strip_prefix('@') {
            let (word, after) = split_word(after);
            rest = skip_spaces(after);
            // Leading and extra spaces count here, so that a line of MAX_INPUT_LEN bytes
            // holds every message the two limits allow and no more.
            let section = line.len() - rest.len();
            if section > MAX_TAGS_LEN {
                return Err(ParseError::TagsTooLong(section));
            }
            tags = Some(word);
        }
        if rest.len() + 2 > MAX_LINE_LEN {
            return Err(ParseError::TooLong(rest.len() + 2));
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (word, after) = split_word(after);
            prefix = Some(word);
            rest = skip_spaces(after);
        }
        let (command, mut rest) = split_word(rest);
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        if !is_command(command) {
            return Err(ParseError::BadCommand(command));
        }
        let mut params = [""; MAX_PARAMS];
        let mut len = 0;
        loop {
            rest = skip_spaces(rest);
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params[len] = trailing;
                len += 1;
                break;
            }
            if len == MAX_PARAMS - 1 {
                params[len] = rest;
                len += 1;
                break;
            }
            let (word, after) = split_word(rest);
            params[len] = word;
            len += 1;
            rest = after;
        }
        Ok(Message {
            tags,
            prefix,
            command,
            params,
            len,
        })
    }

    /// Whether the command is `name`, in any case (clients send `privmsg` too).
    pub fn is(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name)
    }

    /// The parameters, the trailing one included and without its `:`.
    pub fn params(&self) -> &[&'a str] {
        &self.params[..self.len]
    }

    /// Parameter `i`, counting from 0.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params().get(i).copied()
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("tags", &self.tags)
            .field("prefix", &self.prefix)
            .field("command", &self.command)
            .field("params", &self.params())
            .finish()
    }
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(' ')
}

/// The text up to the first space, and the rest from that space on.
fn split_word(s: &str) -> (&str, &str) {
    s.split_at(s.find(' ').unwrap_or(s.len()))
}

fn is_command(command: &str) -> bool {
    let bytes = command.as_bytes();
    bytes.iter().all(u8::is_ascii_alphabetic)
        || (bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit))
}

/// Appends one message and its CR LF: `@tags :prefix COMMAND middle... :trailing`.
///
/// An empty `prefix` or `tags` writes none. The trailing parameter always gets its `:`,
/// even when it is one word or empty (`CAP * LS :` must end in an empty parameter). When
/// the message without its tags would pass [`MAX_LINE_LEN`] it is cut short, in the
/// trailing parameter unless the rest is too long already, and never inside a character.
///
/// A NUL, CR or LF in a parameter becomes a space, so no text can end the line and start
/// another. A word (tags, prefix, command, middle parameter) can moreover not hold a
/// space, which would shift every parameter after it: there that and the line breaks
/// become `_`, an empty middle parameter is written as `*`, and a leading `:` (which
/// would turn the parameter into the trailing one) as `_`. Tags are written as they
/// come otherwise: the caller escapes tag values and keeps them under [`MAX_TAGS_LEN`].
pub fn write(
    out: &mut Vec<u8>,
    tags: Option<&str>,
    prefix: &str,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) {
    push_tags(out, tags);
    let start = out.len();
    push_head(out, prefix, command);
    for param in middle {
        out.push(b' ');
        push_middle(out, param);
    }
    if let Some(trailing) = trailing {
        out.extend_from_slice(b" :");
        push_trailing(out, trailing);
    }
    let mut end = out.len().min(start + MAX_LINE_LEN - 2);
    // Everything written is UTF-8 (the replacements are ASCII for ASCII), so stepping
    // back over continuation bytes finds the start of the character that was cut.
    while end < out.len() && out[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    out.truncate(end);
    out.extend_from_slice(b"\r\n");
}

/// Appends `command target :text` as many times as it takes to carry all of `text` in
/// messages of at most [`MAX_LINE_LEN`] bytes without their tags: for `PRIVMSG` and
/// `NOTICE`, whose text can be up to 4096 bytes.
///
/// Each piece ends at a character boundary, just after a space in its last 40 bytes when
/// there is one; the pieces' texts, joined, are `text` (with a NUL, CR or LF made a space
/// as [`write()`] does). Every piece gets the same tags. An empty text writes nothing: IRC
/// has no empty message. Neither does a prefix and target so long that not one
/// character fits after them: that is the caller's bug, and it gets the lines written
/// so far rather than an endless loop or an over-long line.
pub fn write_privmsg_split(
    out: &mut Vec<u8>,
    tags: Option<&str>,
    prefix: &str,
    command: &str,
    target: &str,
    text: &str,
) {
    let mut rest = text;
    while !rest.is_empty() {
        let line_start = out.len();
        push_tags(out, tags);
        let start = out.len();
        push_head(out, prefix, command);
        out.push(b' ');
        push_middle(out, target);
        out.extend_from_slice(b" :");
        let room = (MAX_LINE_LEN - 2).saturating_sub(out.len() - start);
        let piece = split_point(rest, room);
        if piece == 0 {
            out.truncate(line_start);
            return;
        }
        push_trailing(out, &rest[..piece]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[piece..];
    }
}

/// How many bytes of `text` go into a piece with `room` bytes for it.
fn split_point(text: &str, room: usize) -> usize {
    if text.len() <= room {
        return text.len();
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let window = cut.saturating_sub(SPLIT_WINDOW);
    // The space ends this piece rather than starting the next, where a client would
    // show it.
    match text.as_bytes()[window..cut]
        .iter()
        .rposition(|&b| b == b' ')
    {
        Some(space) => window + space + 1,
        None => cut,
    }
}

fn push_tags(out: &mut Vec<u8>, tags: Option<&str>) {
    if let Some(tags) = tags.filter(|tags| !tags.is_empty()) {
        out.push(b'@');
        push_word(out, tags);
        out.push(b' ');
    }
}

fn push_head(out: &mut Vec<u8>, prefix: &str, command: &str) {
    if !prefix.is_empty() {
        out.push(b':');
        push_word(out, prefix);
        out.push(b' ');
    }
    push_middle(out, command);
}

fn push_middle(out: &mut Vec<u8>, param: &str) {
    match param.strip_prefix(':') {
        _ if param.is_empty() => out.push(b'*'),
        Some(after) => {
            out.push(b'_');
            push_word(out, after);
        }
        None => push_word(out, param),
    }
}

fn push_word(out: &mut Vec<u8>, word: &str) {
    out.extend(word.bytes().map(|b| match b {
        b' ' | b'\r' | b'\n' | 0 => b'_',
        b => b,
    }));
}

fn push_trailing(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| match b {
        b'\r' | b'\n' | 0 => b' ',
        b => b,
    }));
}

/// The IRCv3 `server-time` tag for a time in milliseconds since the Unix epoch, e.g.
/// `time=2026-12-01T21:31:43.123Z`.
pub fn server_time(ms_since_unix_epoch: u64) -> String {
    let to_the_second = rfc3339(ms_since_unix_epoch);
    let to_the_second = to_the_second
        .strip_suffix('Z')
        .expect("rfc3339 writes UTC with a Z");
    format!("time={to_the_second}.{:03}Z", ms_since_unix_epoch % 1000)
}

/// A p2pchat nick as an IRC nick: a `#` (of `NICK#XXXX`, a second key's nick) becomes
/// `|`, any other character IRC does not allow becomes `_`, and a nick starting with a
/// digit or `-` gets a `_` in front. Borrows when the nick is a valid IRC nick already.
///
/// The result is at most one byte longer than `display`: 33 bytes for a 32-byte nick,
/// 50 for one with the longest `#XXXX`, which is kept whole because it is what tells two
/// keys apart. The mapping is not one-to-one: `jürgen` and `jörgen` both become
/// `j_rgen`, `alice#3fa2` looks like the nick `alice|3fa2`, and case is folded only
/// when nicks are compared ([`nick_eq`]), so the caller settles collisions.
pub fn irc_nick(display: &str) -> Cow<'_, str> {
    if check_irc_nick(display, usize::MAX) {
        return Cow::Borrowed(display);
    }
    let mut nick = String::with_capacity(display.len() + 1);
    if display.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        nick.push('_');
    }
    nick.extend(display.chars().map(|c| match c {
        '#' => '|',
        c if is_nick_char(c) => c,
        _ => '_',
    }));
    if nick.is_empty() {
        // Not a p2pchat nick, but an IRC client must still be given a nick.
        nick.push('_');
    }
    Cow::Owned(nick)
}

/// Whether a nick an IRC client asks for is a valid IRC nick of 1 to `max_len` bytes:
/// a letter or one of ``[]\`_^{|}`` first, then letters, digits, those and `-`.
///
/// Each such nick keeps the p2pchat nick rule too (no `#`, `<`, `>`, space or control
/// character) when `max_len` is at most [`MAX_NICK_LEN`](super::text::MAX_NICK_LEN).
pub fn check_irc_nick(nick: &str, max_len: usize) -> bool {
    let mut chars = nick.chars();
    nick.len() <= max_len
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || is_special(c))
        && chars.all(is_nick_char)
}

fn is_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

fn is_nick_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_special(c) || c == '-'
}

/// Whether `name` is a channel name this server can offer: `#`, then 1 to 49 ASCII
/// letters, digits, `-` or `_`, so that every client takes it as it is.
pub fn check_channel(name: &str) -> bool {
    name.strip_prefix('#').is_some_and(|rest| {
        (1..=49).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Whether two nicks are the same under `CASEMAPPING=ascii`: only A to Z fold.
pub fn nick_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// A nick folded under `CASEMAPPING=ascii`, as a key for maps of nicks.
pub fn fold(nick: &str) -> String {
    nick.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::super::text::check_nick;
    use super::*;

    fn parse(line: &str) -> Message<'_> {
        Message::parse(line).unwrap_or_else(|err| panic!("{line:?}: {err}"))
    }

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).expect("written lines are UTF-8")
    }

    /// The lines written, each without its CR LF, checking that each has one.
    fn lines(out: &str) -> Vec<&str> {
        let body = out.strip_suffix("\r\n").expect("ends with CR LF");
        body.split("\r\n").collect()
    }

    #[test]
    fn parses_registration_traffic() {
        let cap = parse("CAP LS 302");
        assert!(cap.is("cap") && cap.is("CAP"));
        assert_eq!(cap.params(), ["LS", "302"]);
        assert_eq!((cap.tags, cap.prefix), (None, None));

        let nick = parse("NICK alice");
        assert_eq!(
            (nick.command, nick.param(0), nick.param(1)),
            ("NICK", Some("alice"), None)
        );

        let user = parse("USER a 0 * :Real Name");
        assert_eq!(user.params(), ["a", "0", "*", "Real Name"]);
    }

    #[test]
    fn empty_trailing_is_a_parameter() {
        // irssi's probe after registration.
        let join = parse("JOIN :");
        assert_eq!(join.params(), [""]);
        assert_eq!(parse("JOIN").params(), [] as [&str; 0]);
    }

    #[test]
    fn parses_chat_and_tags_and_prefix() {
        let msg = parse("PRIVMSG #p2pchat :hello world");
        assert_eq!(msg.params(), ["#p2pchat", "hello world"]);

        let tagged = parse("@label=x;+typing=active PRIVMSG #c :hi");
        assert_eq!(tagged.tags, Some("label=x;+typing=active"));
        assert!(tagged.is("privmsg"));
        assert_eq!(tagged.params(), ["#c", "hi"]);

        let ping = parse(":prefix PING :tok");
        assert_eq!((ping.prefix, ping.command), (Some("prefix"), "PING"));
        assert_eq!(ping.params(), ["tok"]);

        assert_eq!(parse("MODE #p2pchat").params(), ["#p2pchat"]);
        assert_eq!(parse("001 me :Welcome").command, "001");
    }

    #[test]
    fn runs_of_spaces_count_as_one() {
        let msg = parse("  @a=b   :pfx   MODE   #c   +o  ");
        assert_eq!((msg.tags, msg.prefix), (Some("a=b"), Some("pfx")));
        assert_eq!(msg.params(), ["#c", "+o"]);
        assert_eq!(
            parse("PRIVMSG #c :  two  spaces ").param(1),
            Some("  two  spaces ")
        );
    }

    #[test]
    fn fifteenth_parameter_takes_the_rest() {
        let line = format!("CMD {} p15 p16 :p17", "p ".repeat(14));
        let msg = parse(&line);
        assert_eq!(msg.params().len(), MAX_PARAMS);
        assert_eq!(msg.param(14), Some("p15 p16 :p17"));
        let line = format!("CMD {}:last one", "p ".repeat(14));
        let trailing = parse(&line);
        assert_eq!(trailing.param(14), Some("last one"));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Message::parse(""), Err(ParseError::Empty));
        assert_eq!(Message::parse(" "), Err(ParseError::Empty));
        assert_eq!(Message::parse("   "), Err(ParseError::Empty));
        assert_eq!(Message::parse("@a=b"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("@a=b  "), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":pfx"), Err(ParseError::NoCommand));
        assert_eq!(
            Message::parse("PRIV$MSG x"),
            Err(ParseError::BadCommand("PRIV$MSG"))
        );
        assert_eq!(Message::parse("12 x"), Err(ParseError::BadCommand("12")));
        assert_eq!(Message::parse("P1 x"), Err(ParseError::BadCommand("P1")));
        assert_eq!(Message::parse("NICK a\0b"), Err(ParseError::BadChar('\0')));
        assert_eq!(Message::parse("NICK a\r"), Err(ParseError::BadChar('\r')));
        assert_eq!(
            Message::parse("NICK \u{1b}x").map(|m| m.param(0)),
            Ok(Some("\u{1b}x")),
            "other controls are the caller's to judge"
        );
        assert_eq!(
            Message::parse("BAD\u{1b} x").unwrap_err().to_string(),
            r#"command "BAD\u{1b}" is neither letters nor three digits"#
        );
    }

    #[test]
    fn length_limits() {
        let longest = format!("PRIVMSG #c :{}", "x".repeat(MAX_LINE_LEN - 2 - 12));
        assert_eq!(longest.len(), MAX_LINE_LEN - 2);
        let tags = format!("@{}", "t".repeat(MAX_TAGS_LEN - 2));
        let line = format!("{tags} {longest}");
        assert_eq!(line.len(), MAX_INPUT_LEN);
        assert_eq!(parse(&line).tags.map(str::len), Some(MAX_TAGS_LEN - 2));

        assert_eq!(
            Message::parse(&format!("{longest}x")),
            Err(ParseError::TooLong(MAX_LINE_LEN + 1))
        );
        assert_eq!(
            Message::parse(&format!("{tags}t {longest}")),
            Err(ParseError::TagsTooLong(MAX_TAGS_LEN + 1))
        );
        assert_eq!(
            Message::parse(&format!("{tags}  {longest}")),
            Err(ParseError::TagsTooLong(MAX_TAGS_LEN + 1)),
            "extra spaces count"
        );
    }

    #[test]
    fn writes_an_empty_trailing() {
        let out = written(|out| write(out, None, "p2pchat", "CAP", &["*", "LS"], Some("")));
        assert_eq!(out, ":p2pchat CAP * LS :\r\n");
    }

    #[test]
    fn writes_tags_and_no_prefix() {
        let out = written(|out| {
            write(out, Some("time=x"), "", "PING", &[], Some("tok"));
            write(out, Some(""), "s", "PONG", &["s"], None);
        });
        assert_eq!(out, "@time=x PING :tok\r\n:s PONG s\r\n");
    }

    #[test]
    fn injected_line_breaks_stay_on_one_line() {
        let out = written(|out| {
            write(
                out,
                Some("a=b\r\nQUIT"),
                "nick!u@h\r\nQUIT",
                "PRIVMSG",
                &["#c\r\nQUIT", "a b", "", ":x"],
                Some("hi\r\nQUIT :bye\0\n"),
            )
        });
        assert_eq!(
            out,
            "@a=b__QUIT :nick!u@h__QUIT PRIVMSG #c__QUIT a_b * _x :hi  QUIT :bye  \r\n"
        );
        let msg = parse(&out[..out.len() - 2]);
        assert_eq!(msg.params().len(), 5, "no parameter shifted");
    }

    #[test]
    fn long_trailing_is_cut_at_512_bytes() {
        let out = written(|out| write(out, None, "s", "NOTICE", &["me"], Some(&"x".repeat(600))));
        assert_eq!(out.len(), MAX_LINE_LEN);
        assert!(out.ends_with("xx\r\n"));

        let tagged = written(|out| {
            write(
                out,
                Some("time=t"),
                "s",
                "NOTICE",
                &["me"],
                Some(&"x".repeat(600)),
            )
        });
        assert_eq!(
            tagged.len(),
            MAX_LINE_LEN + "@time=t ".len(),
            "tags do not count"
        );
    }

    #[test]
    fn cut_never_splits_a_character() {
        // Heads of every length modulo 4 put the cut at every offset within a character.
        for pad in 0..4 {
            for text in ["é".repeat(300), "☃".repeat(200), "🦀".repeat(150)] {
                let target = format!("#c{}", "x".repeat(pad));
                let out = written(|out| write(out, None, "s", "PRIVMSG", &[&target], Some(&text)));
                assert!(out.len() <= MAX_LINE_LEN && out.len() > MAX_LINE_LEN - 4);
                let trailing = parse(&out[..out.len() - 2]).param(1).unwrap();
                assert!(text.starts_with(trailing));
            }
        }
    }

    #[test]
    fn too_long_head_is_cut_too() {
        let out = written(|out| write(out, None, &"p".repeat(600), "PING", &[], Some("t")));
        assert_eq!(out.len(), MAX_LINE_LEN);
        assert_eq!(lines(&out).len(), 1);
    }

    fn split(prefix: &str, text: &str) -> String {
        written(|out| write_privmsg_split(out, Some("time=t"), prefix, "PRIVMSG", "#p2pchat", text))
    }

    fn pieces(out: &str) -> Vec<&str> {
        lines(out)
            .into_iter()
            .map(|line| {
                let without_tags = line.strip_prefix("@time=t ").expect("every piece tagged");
                assert!(
                    without_tags.len() + 2 <= MAX_LINE_LEN,
                    "{} bytes",
                    without_tags.len()
                );
                let msg = parse(line);
                assert!(msg.is("PRIVMSG") && msg.param(0) == Some("#p2pchat"));
                msg.param(1).expect("a text")
            })
            .collect()
    }

    #[test]
    fn splits_a_long_text_at_spaces() {
        let words = ["hello", "wörld", "☃☃☃", "p2pchat", "🦀", "a", "splitting"];
        let mut text = String::new();
        for word in words.iter().cycle() {
            if text.len() + word.len() + 1 > 4096 {
                break;
            }
            text.push_str(word);
            text.push(' ');
        }
        text.push_str(&"x".repeat(4096 - text.len()));
        assert_eq!(text.len(), 4096);

        let out = split("alice|3fa2!alice@p2pchat", &text);
        let pieces = pieces(&out);
        assert!(pieces.len() >= 9);
        assert_eq!(pieces.concat(), text);
        assert!(
            pieces[..pieces.len() - 2].iter().all(|p| p.ends_with(' ')),
            "every piece but the last ones (in the run of x) ends after a word"
        );
    }

    #[test]
    fn splits_a_text_without_spaces_at_characters() {
        let text = "é".repeat(2048);
        let out = split("bob!bob@p2pchat", &text);
        let pieces = pieces(&out);
        assert_eq!(pieces.concat(), text);
        let (last, full) = pieces.split_last().unwrap();
        assert!(
            full.iter().all(|p| p.len() > MAX_LINE_LEN - 60),
            "pieces are full"
        );
        assert!(!last.is_empty());
    }

    #[test]
    fn split_keeps_short_text_whole_and_breaks_no_line() {
        assert_eq!(
            split("s", "hi there"),
            "@time=t :s PRIVMSG #p2pchat :hi there\r\n"
        );
        assert_eq!(split("s", ""), "");
        assert_eq!(
            split("s", "a\r\nQUIT"),
            "@time=t :s PRIVMSG #p2pchat :a  QUIT\r\n"
        );
    }

    #[test]
    fn split_gives_up_when_no_character_fits() {
        assert_eq!(split(&"p".repeat(MAX_LINE_LEN), "text"), "");
    }

    #[test]
    fn server_time_has_milliseconds() {
        assert_eq!(server_time(0), "time=1970-01-01T00:00:00.000Z");
        assert_eq!(
            server_time(1_764_624_703_123),
            "time=2025-12-01T21:31:43.123Z"
        );
        assert_eq!(
            server_time(1_796_160_703_999),
            "time=2026-12-01T21:31:43.999Z"
        );
        assert_eq!(
            server_time(951_782_400_007),
            "time=2000-02-29T00:00:00.007Z"
        );
    }

    #[test]
    fn maps_display_nicks_onto_irc_nicks() {
        assert!(matches!(irc_nick("alice"), Cow::Borrowed("alice")));
        assert!(matches!(irc_nick("[a]`^{|}-_\\"), Cow::Borrowed(_)));
        assert_eq!(irc_nick("alice#3fa2"), "alice|3fa2");
        assert_eq!(irc_nick("jürgen"), "j_rgen");
        assert_eq!(irc_nick("a.b@c!d:e"), "a_b_c_d_e");
        assert_eq!(irc_nick("3com"), "_3com");
        assert_eq!(irc_nick("-x"), "_-x");
        assert_eq!(irc_nick("é3"), "_3");
        assert_eq!(irc_nick("#3fa2"), "|3fa2");
        assert_eq!(irc_nick(""), "_");
        assert_eq!(irc_nick(&"9".repeat(32)).len(), 33);
        assert_eq!(irc_nick(&"ü".repeat(16)), "_".repeat(16));
        let suffixed = format!("{}#{}", "9".repeat(32), "f".repeat(16));
        assert_eq!(
            irc_nick(&suffixed),
            format!("_{}|{}", "9".repeat(32), "f".repeat(16))
        );
    }

    #[test]
    fn every_mapped_nick_is_an_irc_nick() {
        for display in [
            "alice",
            "alice#3fa2",
            "ünï",
            "3",
            "-",
            "a b",
            "<x>",
            "\u{202e}",
            "",
        ] {
            let nick = irc_nick(display);
            assert!(
                check_irc_nick(&nick, display.len() + 1),
                "{display:?} -> {nick:?}"
            );
            assert_eq!(irc_nick(&nick), nick, "mapping is idempotent");
        }
    }

    #[test]
    fn irc_nick_rule() {
        for good in ["alice", "a", "a-1", "[x]", "`^{|}\\_", "Z9-"] {
            assert!(check_irc_nick(good, 32), "{good:?}");
            assert_eq!(check_nick(good), Ok(()), "{good:?} is a p2pchat nick too");
        }
        assert!(check_irc_nick(&"x".repeat(32), 32));
        assert!(!check_irc_nick(&"x".repeat(33), 32));
        for bad in [
            "", "1abc", "-a", "a#b", "#c", "a b", "ü", "a!b", "a:b", "a<b", "a\u{1}",
        ] {
            assert!(!check_irc_nick(bad, 32), "{bad:?}");
        }
    }

    #[test]
    fn ascii_case_mapping() {
        assert!(nick_eq("Alice", "aLICE"));
        assert!(!nick_eq("a[", "a{"), "ascii, not rfc1459, case mapping");
        assert!(!nick_eq("ÄB", "äb"));
        assert_eq!(fold("Alice|3FA2"), "alice|3fa2");
    }
}

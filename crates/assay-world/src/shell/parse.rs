//! Lexer and parser for the shell subset (see `docs/shell.md`).
//!
//! The grammar: `list := and_or ((';' | '&' | NEWLINE) and_or)*`,
//! `and_or := pipeline (('&&' | '||') pipeline)*`, `pipeline := simple ('|' simple)*`,
//! `simple := (NAME=word)* (word | redirect)*`. Words keep which parts were quoted,
//! so expansion can decide about field splitting and globbing.

/// One piece of a word.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// Literal text; `true` when quoted or escaped (no globbing).
    Lit(String, bool),
    /// `$NAME` / `${NAME}`; `true` inside double quotes (no splitting).
    Var(String, bool),
    /// `$(...)` or backquotes: the inner source; `true` inside double quotes.
    Sub(String, bool),
    /// `${NAME<op>word}`: the name, the operator, its word; `true` inside
    /// double quotes.
    Param(String, ParamOp, Word, bool),
}

/// Operators of `${...}` the shell models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ParamOp {
    /// `${#NAME}`: length in characters.
    Len,
    /// `${NAME:-w}` (true) / `${NAME-w}`: w when unset (or empty).
    Default(bool),
    /// `${NAME:=w}` / `${NAME=w}`: as `Default`, and assigns w.
    Assign(bool),
    /// `${NAME:+w}` / `${NAME+w}`: w when set (and not empty), else nothing.
    Alt(bool),
    /// `${NAME#p}` / `${NAME##p}` (true: longest): remove a matching prefix.
    TrimPrefix(bool),
    /// `${NAME%p}` / `${NAME%%p}` (true: longest): remove a matching suffix.
    TrimSuffix(bool),
}

/// Parses the inside of `${...}`.
fn param(inner: &str, depth: u32) -> Result<Part, ParseError> {
    let bad = || {
        unsupported(
            "${...} parameter operator",
            format!("${{{inner}}}: bad substitution"),
        )
    };
    if let Some(n) = inner.strip_prefix('#')
        && (valid_name(n)
            || n.len() == 1 && n.chars().all(|c| c.is_ascii_digit() || "?#@*".contains(c)))
    {
        return Ok(Part::Param(n.to_string(), ParamOp::Len, Vec::new(), false));
    }
    let name_len = if inner.starts_with(|c: char| c.is_ascii_digit() || "?#@*$".contains(c)) {
        1
    } else {
        inner
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(inner.len())
    };
    let (name, rest) = inner.split_at(name_len);
    if name.is_empty() || (name_len > 1 && !valid_name(name)) {
        return Err(bad());
    }
    let ops: [(&str, ParamOp); 10] = [
        (":-", ParamOp::Default(true)),
        ("-", ParamOp::Default(false)),
        (":=", ParamOp::Assign(true)),
        ("=", ParamOp::Assign(false)),
        (":+", ParamOp::Alt(true)),
        ("+", ParamOp::Alt(false)),
        ("##", ParamOp::TrimPrefix(true)),
        ("#", ParamOp::TrimPrefix(false)),
        ("%%", ParamOp::TrimSuffix(true)),
        ("%", ParamOp::TrimSuffix(false)),
    ];
    let Some((tok, op)) = ops.iter().find(|(t, _)| rest.starts_with(t)) else {
        return Err(bad());
    };
    let word = &rest[tok.len()..];
    let word = if word.len() >= 2 && word.starts_with('\'') && word.ends_with('\'') {
        vec![Part::Lit(word[1..word.len() - 1].to_string(), true)]
    } else {
        let w = word
            .strip_prefix('"')
            .and_then(|w| w.strip_suffix('"'))
            .unwrap_or(word);
        dq_word(w, depth + 1)?
    };
    Ok(Part::Param(name.to_string(), *op, word, false))
}

/// Lexes text as the body of a here-document with an unquoted delimiter:
/// `$VAR`, `${...}`, `$(...)` and backquotes expand; `\$ \` \\` and
/// `\`-newline are escapes; quotes are literal. Every part is quoted.
fn dq_word(src: &str, depth: u32) -> Result<Word, ParseError> {
    if depth > 16 {
        return Err(unsupported(
            "${...} nested deeper than 16",
            "parameter expansions nested too deeply".into(),
        ));
    }
    let mut lx = Lexer {
        c: src.chars().collect(),
        i: 0,
        toks: Vec::new(),
        word: Vec::new(),
        in_word: true,
        pending: Vec::new(),
        depth,
    };
    while let Some(ch) = lx.peek(0) {
        match ch {
            '\\' => match lx.peek(1) {
                Some(n @ ('$' | '`' | '\\')) => {
                    lx.lit(n, true);
                    lx.i += 2;
                }
                Some('\n') => lx.i += 2,
                _ => {
                    lx.lit('\\', true);
                    lx.i += 1;
                }
            },
            '$' => lx.dollar(true)?,
            '`' => lx.backquote(true)?,
            c => {
                lx.lit(c, true);
                lx.i += 1;
            }
        }
    }
    Ok(lx.word)
}

/// Why a command line does not parse.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    /// The message after `sh: `.
    pub msg: String,
    /// The construct, when the line is valid `sh` the subset does not model
    /// (it is then recorded as `unsupported`, not just a syntax error).
    pub unsupported: Option<&'static str>,
}

impl From<String> for ParseError {
    fn from(msg: String) -> Self {
        ParseError {
            msg,
            unsupported: None,
        }
    }
}

impl From<&str> for ParseError {
    fn from(msg: &str) -> Self {
        msg.to_string().into()
    }
}

fn unsupported(construct: &'static str, msg: String) -> ParseError {
    ParseError {
        msg,
        unsupported: Some(construct),
    }
}

/// A word before expansion.
pub(crate) type Word = Vec<Part>;

/// Redirection operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ROp {
    /// `N>`
    Out,
    /// `N>>`
    Append,
    /// `N<`
    In,
    /// `N<<DELIM` / `N<<-DELIM`: the target word is the here-document's body.
    Here,
    /// `N>&M`
    Dup(u32),
    /// `&>` (stdout and stderr to one file)
    Both,
    /// `&>>`
    BothAppend,
}

/// A redirection with its target word (absent for `Dup`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Redir {
    pub fd: u32,
    pub op: ROp,
    pub target: Option<Word>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Word),
    Pipe,
    And,
    Or,
    Semi,
    Redir(u32, ROp),
}

/// A simple command.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Simple {
    pub assigns: Vec<(String, Word)>,
    pub words: Vec<Word>,
    pub redirs: Vec<Redir>,
}

/// Pipelines joined by `&&` (true) / `||` (false).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AndOr {
    pub first: Vec<Simple>,
    pub rest: Vec<(bool, Vec<Simple>)>,
}

/// A parsed command line.
pub(crate) type List = Vec<AndOr>;

struct Lexer {
    c: Vec<char>,
    i: usize,
    toks: Vec<Tok>,
    word: Word,
    in_word: bool,
    /// Here-documents whose bodies start after the next newline:
    /// (index of the body word in `toks`, delimiter, strip tabs, quoted).
    pending: Vec<(usize, String, bool, bool)>,
    /// Nesting of `${...}` operands being lexed (bounded: no input may
    /// exhaust the stack).
    depth: u32,
}

impl Lexer {
    fn lit(&mut self, ch: char, quoted: bool) {
        self.in_word = true;
        if let Some(Part::Lit(s, q)) = self.word.last_mut()
            && *q == quoted
        {
            s.push(ch);
            return;
        }
        self.word.push(Part::Lit(ch.to_string(), quoted));
    }

    fn flush(&mut self) {
        if self.in_word {
            self.toks.push(Tok::Word(std::mem::take(&mut self.word)));
            self.in_word = false;
        }
    }

    fn peek(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    /// At `$`: a variable, a command substitution or a literal `$`.
    fn dollar(&mut self, quoted: bool) -> Result<(), ParseError> {
        match self.peek(1) {
            Some('(') => {
                if self.peek(2) == Some('(') {
                    return Err(unsupported(
                        "$((...))",
                        "arithmetic expansion $((...)) is not supported".into(),
                    ));
                }
                let start = self.i + 2;
                let end = matching_paren(&self.c, start).ok_or("unterminated `$(`")?;
                let src: String = self.c[start..end].iter().collect();
                self.in_word = true;
                self.word.push(Part::Sub(src, quoted));
                self.i = end + 1;
            }
            Some('{') => {
                let start = self.i + 2;
                let end = matching_brace(&self.c, start).ok_or("unterminated `${`")?;
                let name: String = self.c[start..end].iter().collect();
                let part = if valid_name(&name) || name == "?" {
                    Part::Var(name, quoted)
                } else {
                    match param(&name, self.depth)? {
                        Part::Param(n, op, w, _) => Part::Param(n, op, w, quoted),
                        other => other,
                    }
                };
                self.in_word = true;
                self.word.push(part);
                self.i = end + 1;
            }
            Some(ch) if ch == '_' || ch.is_ascii_alphabetic() => {
                let start = self.i + 1;
                let mut end = start;
                while end < self.c.len()
                    && (self.c[end] == '_' || self.c[end].is_ascii_alphanumeric())
                {
                    end += 1;
                }
                self.in_word = true;
                self.word
                    .push(Part::Var(self.c[start..end].iter().collect(), quoted));
                self.i = end;
            }
            Some(ch)
                if ch == '?'
                    || ch == '$'
                    || ch == '#'
                    || ch == '@'
                    || ch == '*'
                    || ch.is_ascii_digit() =>
            {
                self.in_word = true;
                self.word.push(Part::Var(ch.to_string(), quoted));
                self.i += 2;
            }
            _ => {
                self.lit('$', quoted);
                self.i += 1;
            }
        }
        Ok(())
    }

    fn backquote(&mut self, quoted: bool) -> Result<(), ParseError> {
        let start = self.i + 1;
        let end = (start..self.c.len())
            .find(|&j| self.c[j] == '`')
            .ok_or("unterminated backquote")?;
        let src: String = self.c[start..end].iter().collect();
        self.in_word = true;
        self.word.push(Part::Sub(src, quoted));
        self.i = end + 1;
        Ok(())
    }

    fn run(mut self) -> Result<Vec<Tok>, ParseError> {
        while let Some(ch) = self.peek(0) {
            match ch {
                ' ' | '\t' | '\r' => {
                    self.flush();
                    self.i += 1;
                }
                '\n' | ';' => {
                    self.flush();
                    self.toks.push(Tok::Semi);
                    self.i += 1;
                    if ch == '\n' {
                        self.here_bodies()?;
                    }
                }
                '#' if !self.in_word => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                '|' => {
                    self.flush();
                    if self.peek(1) == Some('|') {
                        self.toks.push(Tok::Or);
                        self.i += 2;
                    } else {
                        self.toks.push(Tok::Pipe);
                        self.i += 1;
                    }
                }
                '&' => {
                    self.flush();
                    match self.peek(1) {
                        Some('&') => {
                            self.toks.push(Tok::And);
                            self.i += 2;
                        }
                        Some('>') if self.peek(2) == Some('>') => {
                            self.toks.push(Tok::Redir(1, ROp::BothAppend));
                            self.i += 3;
                        }
                        Some('>') => {
                            self.toks.push(Tok::Redir(1, ROp::Both));
                            self.i += 2;
                        }
                        _ => {
                            // No background jobs: `a & b` runs a then b.
                            self.toks.push(Tok::Semi);
                            self.i += 1;
                        }
                    }
                }
                '>' | '<' => {
                    let fd = match self.word.as_slice() {
                        [Part::Lit(s, false)]
                            if self.in_word
                                && !s.is_empty()
                                && s.len() < 3
                                && s.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            let n = s.parse().unwrap_or(1);
                            self.word.clear();
                            self.in_word = false;
                            Some(n)
                        }
                        _ => {
                            self.flush();
                            None
                        }
                    };
                    if ch == '<' {
                        if self.peek(1) == Some('<') {
                            self.here_doc(fd.unwrap_or(0))?;
                            continue;
                        }
                        self.toks.push(Tok::Redir(fd.unwrap_or(0), ROp::In));
                        self.i += 1;
                    } else {
                        let fd = fd.unwrap_or(1);
                        match self.peek(1) {
                            Some('>') => {
                                self.toks.push(Tok::Redir(fd, ROp::Append));
                                self.i += 2;
                            }
                            Some('&') => {
                                let start = self.i + 2;
                                let mut end = start;
                                while end < self.c.len() && self.c[end].is_ascii_digit() {
                                    end += 1;
                                }
                                let to: String = self.c[start..end].iter().collect();
                                let to: u32 = to.parse().map_err(|_| {
                                    ParseError::from(
                                        "syntax error near `>&`: expected a file descriptor",
                                    )
                                })?;
                                self.toks.push(Tok::Redir(fd, ROp::Dup(to)));
                                self.i = end;
                            }
                            Some('|') => {
                                self.toks.push(Tok::Redir(fd, ROp::Out));
                                self.i += 2;
                            }
                            _ => {
                                self.toks.push(Tok::Redir(fd, ROp::Out));
                                self.i += 1;
                            }
                        }
                    }
                }
                '(' | ')' => {
                    return Err(unsupported(
                        "subshell ( )",
                        format!(
                            "syntax error near unexpected token `{ch}' (subshells and groups are not supported)"
                        ),
                    ));
                }
                '\'' => {
                    let start = self.i + 1;
                    let end = (start..self.c.len())
                        .find(|&j| self.c[j] == '\'')
                        .ok_or("unterminated quoted string")?;
                    self.in_word = true;
                    let s: String = self.c[start..end].iter().collect();
                    self.word.push(Part::Lit(s, true));
                    self.i = end + 1;
                }
                '"' => {
                    self.in_word = true;
                    self.i += 1;
                    loop {
                        match self.peek(0) {
                            None => return Err("unterminated quoted string".into()),
                            Some('"') => {
                                self.i += 1;
                                break;
                            }
                            Some('\\') => match self.peek(1) {
                                Some(n @ ('$' | '`' | '"' | '\\')) => {
                                    self.lit(n, true);
                                    self.i += 2;
                                }
                                Some('\n') => self.i += 2,
                                _ => {
                                    self.lit('\\', true);
                                    self.i += 1;
                                }
                            },
                            Some('$') => self.dollar(true)?,
                            Some('`') => self.backquote(true)?,
                            Some(c) => {
                                self.lit(c, true);
                                self.i += 1;
                            }
                        }
                    }
                }
                '\\' => match self.peek(1) {
                    Some('\n') => self.i += 2,
                    Some(n) => {
                        self.lit(n, true);
                        self.i += 2;
                    }
                    None => {
                        self.lit('\\', true);
                        self.i += 1;
                    }
                },
                '$' => self.dollar(false)?,
                '`' => self.backquote(false)?,
                c => {
                    self.lit(c, false);
                    self.i += 1;
                }
            }
        }
        self.flush();
        // Here-documents cut off by the end of input have what was there.
        self.here_bodies()?;
        Ok(self.toks)
    }

    /// At `<<`: reads the delimiter and leaves a placeholder for the body.
    fn here_doc(&mut self, fd: u32) -> Result<(), ParseError> {
        self.i += 2;
        if self.peek(0) == Some('<') {
            return Err(unsupported(
                "here-string (<<<)",
                "here-strings (<<<) are not supported".into(),
            ));
        }
        let strip = self.peek(0) == Some('-');
        if strip {
            self.i += 1;
        }
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.i += 1;
        }
        let mut delim = String::new();
        let mut quoted = false;
        while let Some(ch) = self.peek(0) {
            match ch {
                '\'' | '"' => {
                    quoted = true;
                    let end = (self.i + 1..self.c.len())
                        .find(|&j| self.c[j] == ch)
                        .ok_or("unterminated quoted string")?;
                    delim.extend(&self.c[self.i + 1..end]);
                    self.i = end + 1;
                }
                '\\' => {
                    quoted = true;
                    delim.extend(self.peek(1));
                    self.i += 2;
                }
                c if c.is_whitespace() || ";|&<>()".contains(c) => break,
                c => {
                    delim.push(c);
                    self.i += 1;
                }
            }
        }
        if delim.is_empty() {
            return Err("syntax error near unexpected token `newline'".into());
        }
        self.toks.push(Tok::Redir(fd, ROp::Here));
        self.pending.push((self.toks.len(), delim, strip, quoted));
        self.toks.push(Tok::Word(Vec::new()));
        Ok(())
    }

    /// After a newline: reads the bodies of pending here-documents.
    fn here_bodies(&mut self) -> Result<(), ParseError> {
        for (at, delim, strip, quoted) in std::mem::take(&mut self.pending) {
            let mut body = String::new();
            while self.i < self.c.len() {
                let end = (self.i..self.c.len())
                    .find(|&j| self.c[j] == '\n')
                    .unwrap_or(self.c.len());
                let line: String = self.c[self.i..end].iter().collect();
                self.i = (end + 1).min(self.c.len());
                let line = if strip {
                    line.trim_start_matches('\t').to_string()
                } else {
                    line
                };
                if line == delim {
                    break;
                }
                body.push_str(&line);
                body.push('\n');
            }
            let word = if quoted {
                vec![Part::Lit(body, true)]
            } else {
                dq_word(&body, self.depth)?
            };
            if let Some(Tok::Word(w)) = self.toks.get_mut(at) {
                *w = word;
            }
        }
        Ok(())
    }
}

/// Index of the `}` closing a `${` whose content starts at `start`
/// (nested `${...}` and quotes skipped).
fn matching_brace(c: &[char], start: usize) -> Option<usize> {
    matching_close(c, start, '}')
}

/// Index of the `)` closing a `$(` whose content starts at `start`.
fn matching_paren(c: &[char], start: usize) -> Option<usize> {
    matching_close(c, start, ')')
}

/// Index of `close` (`}` or `)`) ending a construct whose content starts at
/// `start`, skipping quotes, escapes and nested openings (`${` for braces,
/// `(` for parentheses).
fn matching_close(c: &[char], start: usize, close: char) -> Option<usize> {
    let mut depth = 1;
    let mut j = start;
    let mut quote: Option<char> = None;
    while j < c.len() {
        let ch = c[j];
        match quote {
            Some(q) => {
                if ch == '\\' && q == '"' {
                    j += 1;
                } else if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '\\' => j += 1,
                '\'' | '"' => quote = Some(ch),
                '{' if close == '}' && j > 0 && c[j - 1] == '$' => depth += 1,
                '(' if close == ')' => depth += 1,
                x if x == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j);
                    }
                }
                _ => {}
            },
        }
        j += 1;
    }
    None
}

/// A shell variable name.
pub(crate) fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic())
        && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

/// `NAME=rest` at the start of a word: the name and the remaining word.
fn assignment(w: &Word) -> Option<(String, Word)> {
    let Some(Part::Lit(s, false)) = w.first() else {
        return None;
    };
    let eq = s.find('=')?;
    let name = &s[..eq];
    if !valid_name(name) {
        return None;
    }
    let mut rest = Vec::new();
    if eq + 1 < s.len() {
        rest.push(Part::Lit(s[eq + 1..].to_string(), false));
    }
    rest.extend(w[1..].iter().cloned());
    Some((name.to_string(), rest))
}

fn token_name(t: Option<&Tok>) -> &'static str {
    match t {
        Some(Tok::Pipe) => "|",
        Some(Tok::And) => "&&",
        Some(Tok::Or) => "||",
        Some(Tok::Semi) => ";",
        _ => "newline",
    }
}

/// Parses a command line.
pub(crate) fn parse(src: &str) -> Result<List, ParseError> {
    let toks = Lexer {
        c: src.chars().collect(),
        i: 0,
        toks: Vec::new(),
        word: Vec::new(),
        in_word: false,
        pending: Vec::new(),
        depth: 0,
    }
    .run()?;
    let mut list = Vec::new();
    let mut it = toks.into_iter().peekable();
    loop {
        // Skip empty statements.
        while it.peek() == Some(&Tok::Semi) {
            it.next();
        }
        if it.peek().is_none() {
            break;
        }
        let mut and_or: Option<AndOr> = None;
        let mut pending_op: Option<bool> = None;
        loop {
            // One pipeline.
            let mut pipeline = Vec::new();
            loop {
                let mut cmd = Simple::default();
                while let Some(t) = it.peek() {
                    match t {
                        Tok::Word(_) => {
                            let Some(Tok::Word(w)) = it.next() else {
                                unreachable!()
                            };
                            if cmd.words.is_empty()
                                && let Some(a) = assignment(&w)
                            {
                                cmd.assigns.push(a);
                            } else {
                                cmd.words.push(w);
                            }
                        }
                        Tok::Redir(fd, op) => {
                            let (fd, op) = (*fd, *op);
                            it.next();
                            let target = if matches!(op, ROp::Dup(_)) {
                                None
                            } else {
                                match it.next() {
                                    Some(Tok::Word(w)) => Some(w),
                                    other => {
                                        return Err(format!(
                                            "syntax error near unexpected token `{}'",
                                            token_name(other.as_ref())
                                        )
                                        .into());
                                    }
                                }
                            };
                            cmd.redirs.push(Redir { fd, op, target });
                        }
                        _ => break,
                    }
                }
                if cmd.words.is_empty() && cmd.assigns.is_empty() && cmd.redirs.is_empty() {
                    return Err(format!(
                        "syntax error near unexpected token `{}'",
                        token_name(it.peek())
                    )
                    .into());
                }
                pipeline.push(cmd);
                if it.peek() == Some(&Tok::Pipe) {
                    it.next();
                    continue;
                }
                break;
            }
            match (&mut and_or, pending_op) {
                (None, _) => {
                    and_or = Some(AndOr {
                        first: pipeline,
                        rest: Vec::new(),
                    })
                }
                (Some(a), Some(op)) => a.rest.push((op, pipeline)),
                (Some(_), None) => unreachable!(),
            }
            match it.peek() {
                Some(Tok::And) => pending_op = Some(true),
                Some(Tok::Or) => pending_op = Some(false),
                _ => break,
            }
            it.next();
        }
        list.extend(and_or);
        match it.next() {
            None | Some(Tok::Semi) => {}
            Some(t) => {
                return Err(format!(
                    "syntax error near unexpected token `{}'",
                    token_name(Some(&t))
                )
                .into());
            }
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str, q: bool) -> Part {
        Part::Lit(s.into(), q)
    }

    #[test]
    fn words_quotes_and_vars() {
        let l = parse(r#"echo 'a b' "c $X d" e\ f ${Y}z $(cat f)"#).unwrap();
        let w = &l[0].first[0].words;
        assert_eq!(w.len(), 6);
        assert_eq!(w[1], vec![lit("a b", true)]);
        assert_eq!(
            w[2],
            vec![
                lit("c ", true),
                Part::Var("X".into(), true),
                lit(" d", true)
            ]
        );
        assert_eq!(w[3], vec![lit("e", false), lit(" ", true), lit("f", false)]);
        assert_eq!(w[4], vec![Part::Var("Y".into(), false), lit("z", false)]);
        assert_eq!(w[5], vec![Part::Sub("cat f".into(), false)]);
    }

    #[test]
    fn operators_and_redirects() {
        let l = parse("A=1 cat < in | grep x 2>&1 > out && echo ok || echo no; ls >> log 2> err")
            .unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].first.len(), 2);
        assert_eq!(l[0].first[0].assigns[0].0, "A");
        assert_eq!(l[0].first[0].redirs[0].op, ROp::In);
        let r = &l[0].first[1].redirs;
        assert_eq!((r[0].fd, r[0].op), (2, ROp::Dup(1)));
        assert_eq!((r[1].fd, r[1].op), (1, ROp::Out));
        assert_eq!(l[0].rest.len(), 2);
        assert!(l[0].rest[0].0 && !l[0].rest[1].0);
        assert_eq!(l[1].first[0].redirs[1].fd, 2);
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "| x",
            "a &&",
            "echo 'x",
            "echo \"x",
            "a > ",
            "(ls)",
            "echo $((1+2))",
            "a || | b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" ; ; # just a comment").unwrap().is_empty());
    }
}

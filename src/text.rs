//! The text module: how long a text is on the air, and how to make it fit.
//!
//! Every text that leaves the gateway passes through here. It knows the GSM 03.38
//! default alphabet (3GPP TS 23.038) and its extension table, counts a text in the units
//! the network counts (septets for GSM-7, UTF-16 code units for UCS-2), turns French
//! typography into GSM-7 when a tenant asks for it, and splits text at word boundaries.
//!
//! Written by hand: the GSM-7 crates on crates.io either encode to packed bytes (which we
//! never need: aggregators take UTF-8) or carry the `ç` mapping of Unicode's GSM0338.TXT,
//! which real handsets do not follow (0x09 is capital `Ç`). The table is 150 characters.
//!
//! Pure: no I/O, no allocation unless a text must change.

use std::borrow::Cow;

/// The two encodings a USSD screen or an SMS can travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The GSM 03.38 default alphabet, 7 bits a character (extension characters take 2).
    Gsm7,
    /// UCS-2 (UTF-16 on the wire), 16 bits a code unit. One character outside GSM-7 forces it.
    Ucs2,
}

impl Encoding {
    /// Short lowercase name, as shown by the simulator and the JSON dialect.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}

/// How much room a text takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub encoding: Encoding,
    /// Septets for GSM-7 (an extension character counts 2), UTF-16 code units for UCS-2.
    pub units: usize,
}

/// What a text costs in GSM-7 septets: `Some(1)` for the basic table, `Some(2)` for the
/// extension table (escape + code), `None` when the character is not in GSM-7 at all.
pub fn gsm7_cost(c: char) -> Option<usize> {
    match c {
        // Printable ASCII is basic, but for the backtick (absent) and the extension characters.
        '^' | '{' | '}' | '\\' | '[' | ']' | '~' | '|' => Some(2),
        '`' => None,
        ' '..='~' | '\n' | '\r' => Some(1),
        '\u{0C}' | '€' => Some(2),
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ'
        | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä'
        | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        _ => None,
    }
}

/// True when every character of `s` is in GSM-7.
pub fn is_gsm7(s: &str) -> bool {
    s.chars().all(|c| gsm7_cost(c).is_some())
}

/// Measures `s`: GSM-7 septets when it all fits the alphabet, else UTF-16 code units.
pub fn measure(s: &str) -> Measure {
    let mut septets = 0;
    for c in s.chars() {
        match gsm7_cost(c) {
            Some(n) => septets += n,
            None => {
                return Measure {
                    encoding: Encoding::Ucs2,
                    units: s.encode_utf16().count(),
                }
            }
        }
    }
    Measure {
        encoding: Encoding::Gsm7,
        units: septets,
    }
}

/// Cost of `s` in the units of `encoding` (the caller already knows the encoding).
pub fn units_in(s: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => s.chars().map(|c| gsm7_cost(c).unwrap_or(1)).sum(),
        Encoding::Ucs2 => s.encode_utf16().count(),
    }
}

/// What to do with characters outside GSM-7, per tenant and channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextPolicy {
    /// Replace French typography by its nearest GSM-7 form (`ê`→`e`, `’`→`'`), so the
    /// text stays GSM-7. Characters with no replacement (emoji) are kept and force UCS-2.
    #[default]
    Transliterate,
    /// Keep every character; a text with one non-GSM-7 character travels as UCS-2.
    Unicode,
}

impl TextPolicy {
    /// Applies the policy to `s`. Borrows when nothing changes.
    pub fn apply(self, s: &str) -> Cow<'_, str> {
        match self {
            TextPolicy::Transliterate => transliterate(s),
            TextPolicy::Unicode => Cow::Borrowed(s),
        }
    }
}

/// The GSM-7 replacement of a character that is not in GSM-7, if it has one.
fn replacement(c: char) -> Option<&'static str> {
    Some(match c {
        'â' | 'á' | 'ã' => "a",
        'À' | 'Â' | 'Á' | 'Ã' => "A",
        'ç' => "c",
        'ê' | 'ë' => "e",
        'È' | 'Ê' | 'Ë' => "E",
        'î' | 'ï' | 'í' => "i",
        'Î' | 'Ï' | 'Í' | 'Ì' => "I",
        'ô' | 'ó' | 'õ' => "o",
        'Ô' | 'Ó' | 'Õ' | 'Ò' => "O",
        'û' | 'ú' => "u",
        'Ù' | 'Û' | 'Ú' => "U",
        'ÿ' | 'ý' => "y",
        'Ÿ' | 'Ý' => "Y",
        'œ' => "oe",
        'Œ' => "OE",
        '’' | '‘' | '‚' | 'ʼ' | '′' | '`' | '´' => "'",
        '«' | '»' | '“' | '”' | '„' | '″' => "\"",
        '–' | '—' | '‒' | '−' | '•' => "-",
        '…' => "...",
        '\u{A0}' | '\u{202F}' | '\u{2009}' | '\u{2007}' | '\t' => " ",
        '°' => "o",
        '×' => "x",
        _ => return None,
    })
}

/// Turns French typography into GSM-7 where a replacement exists. Guillemets lose the
/// space inside them (`« oui »` becomes `"oui"`).
pub fn transliterate(s: &str) -> Cow<'_, str> {
    if is_gsm7(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        // The space inside closing guillemets goes with them.
        if is_space_like(c) && chars.peek() == Some(&'»') {
            continue;
        }
        if gsm7_cost(c).is_some() {
            out.push(c);
            continue;
        }
        match c {
            '«' => {
                out.push('"');
                while chars.peek().is_some_and(|n| is_space_like(*n)) {
                    chars.next();
                }
            }
            _ => match replacement(c) {
                Some(r) => out.push_str(r),
                None => out.push(c),
            },
        }
    }
    Cow::Owned(out)
}

fn is_space_like(c: char) -> bool {
    matches!(c, ' ' | '\u{A0}' | '\u{202F}' | '\u{2009}')
}

/// The room of one USSD screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UssdLimits {
    /// Characters of a GSM-7 screen: 182 (160 octets of 7-bit packed text, GSM 04.80).
    pub gsm7: usize,
    /// Characters of a UCS-2 screen: 80 (160 octets of 16-bit text).
    pub ucs2: usize,
}

impl Default for UssdLimits {
    fn default() -> Self {
        UssdLimits {
            gsm7: 182,
            ucs2: 80,
        }
    }
}

impl UssdLimits {
    /// The room of a screen in `encoding`.
    pub fn for_encoding(self, encoding: Encoding) -> usize {
        match encoding {
            Encoding::Gsm7 => self.gsm7,
            Encoding::Ucs2 => self.ucs2,
        }
    }

    /// True when `s` fits on one screen.
    pub fn fits(self, s: &str) -> bool {
        let m = measure(s);
        m.units <= self.for_encoding(m.encoding)
    }
}

/// Splits one line into pieces of at most `budget` units (in `encoding`), cutting only
/// between words. A single word longer than the budget is cut inside (the only case
/// where that happens; `tamtam check` reports such screens).
pub fn wrap(line: &str, budget: usize, encoding: Encoding) -> Vec<String> {
    let budget = budget.max(1);
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_units = 0;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let word_units = units_in(word, encoding);
        let sep = usize::from(!current.is_empty());
        if current_units + sep + word_units <= budget {
            if sep == 1 {
                current.push(' ');
            }
            current.push_str(word);
            current_units += sep + word_units;
            continue;
        }
        if !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
            current_units = 0;
        }
        if word_units <= budget {
            current.push_str(word);
            current_units = word_units;
        } else {
            // A word longer than a whole piece: cut it by characters.
            for c in word.chars() {
                let cu = units_in(c.encode_utf8(&mut [0; 4]), encoding);
                if current_units + cu > budget {
                    pieces.push(std::mem::take(&mut current));
                    current_units = 0;
                }
                current.push(c);
                current_units += cu;
            }
        }
    }
    if !current.is_empty() || pieces.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// How an SMS travels: its encoding, how many parts, and its length in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    pub encoding: Encoding,
    pub count: usize,
    pub units: usize,
}

/// Room of a single SMS and of each part of a concatenated one, in units of `encoding`.
pub fn sms_room(encoding: Encoding) -> (usize, usize) {
    match encoding {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    }
}

/// Counts the parts `s` takes as an SMS. Exact: an extension character (2 septets) or a
/// surrogate pair (2 code units) is never split across two parts, as handsets require.
pub fn sms_segments(s: &str) -> Segments {
    let m = measure(s);
    let (single, part) = sms_room(m.encoding);
    if m.units <= single {
        return Segments {
            encoding: m.encoding,
            count: usize::from(m.units > 0).max(1),
            units: m.units,
        };
    }
    let mut count = 1;
    let mut used = 0;
    for c in s.chars() {
        let cu = char_units(c, m.encoding);
        if used + cu > part {
            count += 1;
            used = 0;
        }
        used += cu;
    }
    Segments {
        encoding: m.encoding,
        count,
        units: m.units,
    }
}

fn char_units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => gsm7_cost(c).unwrap_or(1),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// Strips accents for matching (not for display): `Médiateur` and `MEDIATEUR` fold alike.
/// Lower and upper case are kept; match case-insensitively.
pub fn fold_accents(s: &str) -> String {
    let t = transliterate(s);
    t.chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'à' | 'ä' | 'å' | 'â' => 'a',
            'À' | 'Ä' | 'Å' | 'Â' => 'A',
            'ù' | 'ü' | 'û' => 'u',
            'Ù' | 'Ü' | 'Û' => 'U',
            'ì' | 'î' | 'ï' => 'i',
            'ò' | 'ö' | 'ø' | 'ô' => 'o',
            'Ö' | 'Ø' | 'Ô' => 'O',
            'ñ' => 'n',
            'Ñ' => 'N',
            'Ç' => 'C',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// An SMS reply cut to fit: what to send now and what `SUITE` will send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped {
    pub text: String,
    pub rest: Option<String>,
    pub segments: Segments,
}

/// Caps `text` at `max_segments` SMS parts. A longer text is cut at a word boundary and
/// ends with `suffix` (e.g. `… Envoyez SUITE`); the remainder comes back as `rest`.
pub fn shape_sms(text: &str, max_segments: usize, suffix: &str) -> Shaped {
    let max = max_segments.max(1);
    let whole = sms_segments(text);
    if whole.count <= max {
        return Shaped {
            text: text.to_string(),
            rest: None,
            segments: whole,
        };
    }
    // Candidate cuts: before each space or line break, longest first that fits.
    let cuts: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .collect();
    let fits = |i: usize| sms_segments(&format!("{}{suffix}", text[..i].trim_end())).count <= max;
    // Segment counts grow with the prefix, so the longest fitting cut is found by bisection.
    let (mut lo, mut hi) = (0usize, cuts.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(cuts[mid - 1]) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let cut = if lo == 0 {
        // Not even one word fits before the suffix: cut by characters.
        let mut end = 0;
        for (i, c) in text.char_indices() {
            if !fits(i + c.len_utf8()) {
                break;
            }
            end = i + c.len_utf8();
        }
        end
    } else {
        cuts[lo - 1]
    };
    let shown = format!("{}{suffix}", text[..cut].trim_end());
    let rest = text[cut..].trim().to_string();
    Shaped {
        segments: sms_segments(&shown),
        text: shown,
        rest: (!rest.is_empty()).then_some(rest),
    }
}

/// The GSM 03.38 basic table, by septet (0x1B, the escape to the extension table, is
/// read by [`decode_gsm7`] and never looked up here).
const GSM7_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table's character for the septet after an escape.
fn gsm7_extension(septet: u8) -> Option<char> {
    Some(match septet {
        0x0A => '\u{0C}',
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        _ => return None,
    })
}

/// Decodes GSM 03.38 text given one septet a byte (unpacked, as SMPP peers such as Jasmin
/// pass data coding 0): `cr\x05dit` is `crédit`. An escape (0x1B) reads the next septet in
/// the extension table; an escape before a septet it does not define reads as that
/// septet's basic character, as handsets show it (3GPP TS 23.038), and a trailing one as
/// nothing. `None` when a byte is not a septet (0x80 and above): the text is not GSM.
pub fn decode_gsm7(bytes: &[u8]) -> Option<String> {
    if bytes.iter().any(|&b| b > 0x7F) {
        return None;
    }
    let mut out = String::with_capacity(bytes.len());
    let mut septets = bytes.iter().copied();
    while let Some(b) = septets.next() {
        if b == 0x1B {
            if let Some(next) = septets.next() {
                out.push(gsm7_extension(next).unwrap_or(GSM7_BASIC[usize::from(next)]));
            }
        } else {
            out.push(GSM7_BASIC[usize::from(b)]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_table_pitfalls() {
        // In the basic table.
        for c in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà".chars()
        {
            assert_eq!(gsm7_cost(c), Some(1), "{c:?} is basic GSM-7");
        }
        // In the extension table: two septets each.
        for c in "^{}\\[]~|€\u{0C}".chars() {
            assert_eq!(gsm7_cost(c), Some(2), "{c:?} is an extension character");
        }
        // Not GSM-7 at all: French letters that force UCS-2, typographic marks, emoji.
        for c in "çâêëîïôûÿœÀÂÈÊËÎÏÔÙÛŸŒ«»’`\u{A0}😀".chars() {
            assert_eq!(gsm7_cost(c), None, "{c:?} is not GSM-7");
        }
    }

    #[test]
    fn measure_counts_septets_and_utf16_units() {
        let table: &[(&str, Encoding, usize)] = &[
            ("", Encoding::Gsm7, 0),
            ("Crédit épuisé", Encoding::Gsm7, 13),
            ("Prix: 5€", Encoding::Gsm7, 9),
            ("[a]", Encoding::Gsm7, 5),
            ("Ça va", Encoding::Gsm7, 5),
            ("ça va", Encoding::Ucs2, 5),
            ("reçu 😀", Encoding::Ucs2, 7),
            ("L’OPT", Encoding::Ucs2, 5),
        ];
        for (s, enc, units) in table {
            assert_eq!(
                measure(s),
                Measure {
                    encoding: *enc,
                    units: *units
                },
                "{s:?}"
            );
        }
    }

    #[test]
    fn transliteration_keeps_gsm7_and_french_meaning() {
        let table: &[(&str, &str)] = &[
            ("Numéro reçu", "Numéro recu"),
            ("Être à l’heure", "Etre à l'heure"),
            ("Contrôle de la tête", "Controle de la tete"),
            ("« Faire opposition »", "\"Faire opposition\""),
            ("cœur", "coeur"),
            ("Ça coûte 1\u{A0}000 F", "Ça coute 1 000 F"),
            ("Déjà là", "Déjà là"),
            ("7h30 – 15h45", "7h30 - 15h45"),
            ("Et après…", "Et après..."),
            ("emoji 😀 reste", "emoji 😀 reste"),
        ];
        for (input, expected) in table {
            assert_eq!(transliterate(input), *expected, "{input:?}");
        }
        assert!(matches!(transliterate("déjà"), Cow::Borrowed(_)));
        assert!(is_gsm7(&transliterate(
            "Reçu, hôtel, maïs, Noël, œuvre, où"
        )));
    }

    #[test]
    fn ussd_limits_follow_the_encoding() {
        let limits = UssdLimits::default();
        assert!(limits.fits(&"a".repeat(182)));
        assert!(!limits.fits(&"a".repeat(183)));
        // 91 euro signs are 182 septets.
        assert!(limits.fits(&"€".repeat(91)));
        assert!(!limits.fits(&"€".repeat(92)));
        assert!(limits.fits(&"ç".repeat(80)));
        assert!(!limits.fits(&"ç".repeat(81)));
    }

    #[test]
    fn wrap_cuts_between_words_only() {
        let line = "Munissez-vous de votre pièce d'identité et de votre carte MEMO";
        for budget in [13, 20, 33, 80] {
            let pieces = wrap(line, budget, Encoding::Gsm7);
            assert_eq!(pieces.join(" "), line, "budget {budget}");
            for p in &pieces {
                assert!(units_in(p, Encoding::Gsm7) <= budget, "{p:?} > {budget}");
            }
        }
        assert_eq!(
            wrap("abcdefghij", 4, Encoding::Gsm7),
            ["abcd", "efgh", "ij"]
        );
        assert_eq!(wrap("", 4, Encoding::Gsm7), [""]);
        // Extension characters count two septets.
        assert_eq!(wrap("[[ ab", 4, Encoding::Gsm7), ["[[", "ab"]);
    }

    #[test]
    fn keywords_fold_accents() {
        assert_eq!(fold_accents("Médiateur"), "Mediateur");
        assert_eq!(fold_accents("RÉACTIVATION"), "REACTIVATION");
        assert_eq!(fold_accents("Réactivation ça"), "Reactivation ca");
    }

    #[test]
    fn long_sms_are_cut_at_a_word_and_continue() {
        let suffix = "... Envoyez SUITE";
        let text = "mot ".repeat(200);
        let shaped = shape_sms(text.trim(), 3, suffix);
        assert_eq!(shaped.segments.count, 3);
        assert!(shaped.text.ends_with(suffix));
        let body = shaped.text.trim_end_matches(suffix);
        assert!(body.split(' ').all(|w| w == "mot"), "cut between words");
        // Nothing is lost: what was sent plus the rest is the whole text.
        let rest = shaped.rest.clone().unwrap();
        assert_eq!(format!("{body} {rest}"), text.trim());
        // As much as fits was sent: one more word would not fit.
        let one_more = format!("{body} mot{suffix}");
        assert!(sms_segments(&one_more).count > 3);
        // A short text goes whole.
        let short = shape_sms("Bonjour", 3, suffix);
        assert_eq!((short.text.as_str(), short.rest), ("Bonjour", None));
        // UCS-2 text: 3 parts of 67.
        let uni = "reçu ".repeat(60);
        let shaped = shape_sms(uni.trim(), 3, " … Envoyez SUITE");
        assert_eq!(shaped.segments.encoding, Encoding::Ucs2);
        assert!(shaped.segments.count <= 3 && shaped.rest.is_some());
    }

    #[test]
    fn sms_segments_are_exact() {
        let table: &[(String, Encoding, usize)] = &[
            ("a".repeat(160), Encoding::Gsm7, 1),
            ("a".repeat(161), Encoding::Gsm7, 2),
            ("a".repeat(306), Encoding::Gsm7, 2),
            ("a".repeat(307), Encoding::Gsm7, 3),
            ("€".repeat(80), Encoding::Gsm7, 1),
            ("€".repeat(81), Encoding::Gsm7, 2),
            // 152 septets then an escape pair: the pair may not be split, so it starts part 2.
            (
                format!("{}€{}", "a".repeat(152), "a".repeat(10)),
                Encoding::Gsm7,
                2,
            ),
            (
                format!("{}€{}", "a".repeat(152), "a".repeat(151)),
                Encoding::Gsm7,
                2,
            ),
            (
                format!("{}€{}", "a".repeat(152), "a".repeat(152)),
                Encoding::Gsm7,
                3,
            ),
            ("ç".repeat(70), Encoding::Ucs2, 1),
            ("ç".repeat(71), Encoding::Ucs2, 2),
            ("ç".repeat(134), Encoding::Ucs2, 2),
            ("ç".repeat(135), Encoding::Ucs2, 3),
            // 66 code units then an emoji (a surrogate pair) that may not be split.
            (format!("{}😀", "ç".repeat(66)), Encoding::Ucs2, 1),
            (
                format!("{}😀a", "ç".repeat(66) + &"ç".repeat(2)),
                Encoding::Ucs2,
                2,
            ),
            (
                format!("{}😀{}", "ç".repeat(66), "ç".repeat(10)),
                Encoding::Ucs2,
                2,
            ),
            (String::new(), Encoding::Gsm7, 1),
        ];
        for (s, enc, count) in table {
            let seg = sms_segments(s);
            assert_eq!((seg.encoding, seg.count), (*enc, *count), "{s:?}");
        }
    }

    #[test]
    fn gsm7_decoding_reads_septets_and_the_extension_table() {
        assert_eq!(
            decode_gsm7(b"cr\x05dit restant").as_deref(),
            Some("crédit restant")
        );
        assert_eq!(decode_gsm7(b"CONSO").as_deref(), Some("CONSO"));
        assert_eq!(
            decode_gsm7(b"\x00\x02\x11\x09\x7f\x40\x60").as_deref(),
            Some("@$_Çà¡¿")
        );
        assert_eq!(
            decode_gsm7(b"\x1b\x65 5\x1b\x28\x1b\x29\x1b\x3c\x1b\x3e").as_deref(),
            Some("€ 5{}[]")
        );
        // An escape before an undefined septet, and a trailing one.
        assert_eq!(decode_gsm7(b"a\x1bAb\x1b").as_deref(), Some("aAb"));
        assert_eq!(decode_gsm7("é".as_bytes()), None, "UTF-8 is not GSM");
        // Every character the GSM alphabet holds decodes back to itself.
        for (septet, c) in GSM7_BASIC.iter().enumerate() {
            if septet != 0x1B {
                assert_eq!(gsm7_cost(*c), Some(1), "{septet:#x} {c:?}");
            }
        }
    }
}

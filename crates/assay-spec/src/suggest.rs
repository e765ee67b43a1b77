//! "Did you mean" suggestions for misspelt keys and names.

/// The closest candidate to `input`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            // Jaro-Winkler ranks long names well; an edit distance of one catches
            // typos in short names (`s2` for `s1`) that it scores too low.
            let close = strsim::levenshtein(input, c) <= 1 && input.len() > 1;
            let score = strsim::jaro_winkler(input, c) + if close { 1.0 } else { 0.0 };
            (score, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("sensitivty", ["sensitivity", "symlink", "text"]),
            Some("sensitivity")
        );
        assert_eq!(did_you_mean("zzz", ["sensitivity", "symlink"]), None);
    }
}

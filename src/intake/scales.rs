//! `expand`'s four scales as people give them: typed as `TOP,BOTTOM,LEFT,RIGHT`
//! (`wandash submit --expand`, the editor's field) or as four optional numbers (the MCP
//! tools' `top_scale`...). Only the form is read here; the 1.0-2.0 range is a rule, so
//! `validate_all` reports it like every other rule, per side.

use crate::dashscope::ExpandScales;

/// Reads `TOP,BOTTOM,LEFT,RIGHT`, e.g. `1.5,1.5,1,1` (spaces around the commas allowed).
pub fn parse_expand(text: &str) -> Result<ExpandScales, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [top, bottom, left, right] = parts.as_slice() else {
        return Err(format!(
            "`{text}` is not TOP,BOTTOM,LEFT,RIGHT (four numbers 1.0-2.0, e.g. 1.5,1.5,1,1)"
        ));
    };
    let number = |side: &str, value: &str| {
        value
            .parse::<f64>()
            .map_err(|_| format!("{side} scale `{value}` is not a number"))
    };
    Ok(ExpandScales {
        top: number("top", top)?,
        bottom: number("bottom", bottom)?,
        left: number("left", left)?,
        right: number("right", right)?,
    })
}

/// The scales from four optional sides `[top, bottom, left, right]`: a side not given
/// stays 1.0; none given is no expand at all.
pub fn expand_from_sides(sides: [Option<f64>; 4]) -> Option<ExpandScales> {
    if sides.iter().all(Option::is_none) {
        return None;
    }
    let [top, bottom, left, right] = sides.map(|side| side.unwrap_or(1.0));
    Some(ExpandScales {
        top,
        bottom,
        left,
        right,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_numbers_in_order_with_spaces_allowed() {
        let scales = parse_expand("1.5, 2,1 ,1.25").unwrap();
        assert_eq!(
            (scales.top, scales.bottom, scales.left, scales.right),
            (1.5, 2.0, 1.0, 1.25)
        );
    }

    #[test]
    fn the_wrong_count_or_a_word_is_named() {
        let err = parse_expand("1,1,1").unwrap_err();
        assert!(
            err.starts_with("`1,1,1` is not TOP,BOTTOM,LEFT,RIGHT"),
            "{err}"
        );
        assert_eq!(
            parse_expand("1,1,wide,1").unwrap_err(),
            "left scale `wide` is not a number"
        );
    }

    #[test]
    fn out_of_range_values_are_read_for_the_rules_to_refuse() {
        assert_eq!(parse_expand("3,1,1,1").unwrap().top, 3.0);
    }

    #[test]
    fn sides_not_given_stay_one_and_none_given_is_no_expand() {
        assert_eq!(expand_from_sides([None; 4]), None);
        let scales = expand_from_sides([None, Some(1.5), None, None]).unwrap();
        assert_eq!(
            (scales.top, scales.bottom, scales.left, scales.right),
            (1.0, 1.5, 1.0, 1.0)
        );
    }
}

//! The one shape every state machine here has: a table of `(from, action, to)` rows. A move not
//! in the table is FAILED_PRECONDITION naming the current state and the states the action is
//! allowed from, so the refusal and the table can never disagree.

use std::fmt::Display;

use keel_kernel::Error;

/// The state `action` moves `from` to, by `table`; FAILED_PRECONDITION when the table has no
/// such row. `what` names the thing ("order", "offer").
pub fn apply<S, A>(table: &[(S, A, S)], what: &str, from: S, action: A) -> Result<S, Error>
where
    S: Copy + PartialEq + Display,
    A: Copy + PartialEq + Display,
{
    if let Some((_, _, to)) = table.iter().find(|(f, a, _)| *f == from && *a == action) {
        return Ok(*to);
    }
    let allowed: Vec<String> = table
        .iter()
        .filter(|(_, a, _)| *a == action)
        .map(|(f, _, _)| f.to_string())
        .collect();
    Err(Error::failed_precondition(format!(
        "the {what} is {from}; {action} is allowed only when it is {}",
        allowed.join(" or ")
    )))
}

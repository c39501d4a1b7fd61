//! Lists of hosts in an error: problems that differ only by their host
//! written once, and what each host serves, grouped past `fleet::MANY`
//! hosts (a thousand lines that say the same say less than one), every
//! host still accounted for.

use std::fmt::{Formatter, Result};

use super::HostProblem;
use crate::cli::fleet::MANY;

/// `web001, web002, web003 and 297 more`, or every name when there are
/// three or fewer.
fn names(hosts: &[&str]) -> String {
    if hosts.len() > 3 {
        let more = hosts.len() - 3;
        format!("{} and {more} more", hosts[..3].join(", "))
    } else {
        hosts.join(", ")
    }
}

/// The hosts of each group of items `same` holds alike, with the group's
/// first item, in the order each group first comes.
fn grouped<'a, T>(
    items: impl Iterator<Item = (&'a str, &'a T)>,
    same: impl Fn(&T, &T) -> bool,
) -> Vec<(Vec<&'a str>, &'a T)> {
    let mut groups: Vec<(Vec<&str>, &T)> = Vec::new();
    for (host, item) in items {
        match groups.iter_mut().find(|(_, first)| same(first, item)) {
            Some((hosts, _)) => hosts.push(host),
            None => groups.push((vec![host], item)),
        }
    }
    groups
}

/// Each problem on its line; those that differ only by their host (300
/// hosts that refused the same way) once, naming the first three hosts
/// and how many more.
pub(super) fn write_problems(f: &mut Formatter<'_>, problems: &[HostProblem]) -> Result {
    let same = |a: &HostProblem, b: &HostProblem| {
        (&a.step, a.code, &a.command, &a.detail, a.unreachable)
            == (&b.step, b.code, &b.command, &b.detail, b.unreachable)
    };
    for (hosts, p) in grouped(problems.iter().map(|p| (p.host.as_str(), p)), same) {
        let host = names(&hosts);
        write!(f, "\n  {}", HostProblem { host, ..p.clone() })?;
    }
    Ok(())
}

/// What each host serves, a line each; past `MANY` hosts, a line per
/// group of hosts that serve the same, every host named but in the
/// largest group, which comes last as "the other N hosts" (so the list
/// stays exact: `web005, web009: nothing …`, then `the other 297 hosts:
/// …`).
pub(super) fn write_serving(f: &mut Formatter<'_>, serving: &[(&str, String)]) -> Result {
    if serving.len() <= MANY {
        return serving
            .iter()
            .try_for_each(|(host, what)| write!(f, "\n    {host}: {what}"));
    }
    let items = serving.iter().map(|(host, what)| (*host, what));
    let mut groups = grouped(items, |a, b| a == b);
    let largest = (0..groups.len())
        .max_by_key(|&i| (groups[i].0.len(), std::cmp::Reverse(i)))
        .expect("past MANY hosts there is a group");
    let (rest, what) = groups.remove(largest);
    for (hosts, what) in &groups {
        write!(f, "\n    {}: {what}", hosts.join(", "))?;
    }
    let n = rest.len();
    match groups.is_empty() {
        true => write!(f, "\n    all {n} hosts: {what}"),
        false => write!(
            f,
            "\n    the other {n} host{}: {what}",
            if n == 1 { "" } else { "s" }
        ),
    }
}

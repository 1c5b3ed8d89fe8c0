//! The location being validated, kept as borrowed segments and formatted as FHIRPath only for an issue.

use std::fmt::Write;

/// One step of a location.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    /// The outermost resource type.
    Root(&'a str),
    /// A property: `.name`.
    Field(&'a str),
    /// A repeat: `[i]`.
    Index(usize),
    /// A choice property: `.value.ofType(Quantity)`.
    Choice(&'a str, &'a str),
    /// A resource nested in another (contained, bundle entry): `/*Patient/id*/`, as the HL7 validator
    /// writes it.
    Resource(&'a str, Option<&'a str>),
}

/// A stack of segments.
#[derive(Debug, Default)]
pub struct Path<'a> {
    segs: Vec<Seg<'a>>,
}

impl<'a> Path<'a> {
    /// Enters a step.
    pub fn push(&mut self, seg: Seg<'a>) {
        self.segs.push(seg);
    }

    /// Leaves the last step.
    pub fn pop(&mut self) {
        self.segs.pop();
    }

    /// The FHIRPath expression, e.g. `Bundle.entry[0].resource/*Patient/p1*/.name[0].given[1]`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for seg in &self.segs {
            // Writing to a String cannot fail.
            let _ = match seg {
                Seg::Root(t) => write!(out, "{t}"),
                Seg::Field(n) => write!(out, ".{n}"),
                Seg::Index(i) => write!(out, "[{i}]"),
                Seg::Choice(n, t) => write!(out, ".{n}.ofType({t})"),
                Seg::Resource(t, id) => write!(out, "/*{t}/{}*/", id.unwrap_or("null")),
            };
        }
        out
    }
}

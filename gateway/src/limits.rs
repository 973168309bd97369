//! Limits on the shape of an operation, checked once it is parsed and before anything runs.
//!
//! Depth and complexity (async-graphql's own limits) do not stop a wide query: eighty
//! aliases of one cheap list each fan out to the services. So the number of root fields
//! (aliases included), of root mutations (each one a state change) and of aliases anywhere
//! in the document are capped, each with its own code naming the rule.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub struct OperationLimits {
    pub max_root_fields: usize,
    pub max_root_mutations: usize,
    pub max_aliases: usize,
}

impl ExtensionFactory for OperationLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        self.check(&doc)?;
        Ok(doc)
    }
}

impl OperationLimits {
    /// Refuses a document over any limit. Every operation in it is checked, not only the one
    /// that will run: the cost of a check is the same, and the document is the client's.
    pub fn check(&self, doc: &ExecutableDocument) -> ServerResult<()> {
        let operations: Vec<_> = match &doc.operations {
            DocumentOperations::Single(op) => vec![op],
            DocumentOperations::Multiple(ops) => ops.values().collect(),
        };
        for op in operations {
            let roots = root_fields(&op.node.selection_set, &doc.fragments);
            if op.node.ty == OperationType::Mutation && roots > self.max_root_mutations {
                return Err(refusal(
                    "TOO_MANY_ROOT_MUTATIONS",
                    format!(
                        "a request may carry at most {} mutations (limits.max_root_mutations); \
                         it has {roots}",
                        self.max_root_mutations
                    ),
                ));
            }
            if roots > self.max_root_fields {
                return Err(refusal(
                    "TOO_MANY_ROOT_FIELDS",
                    format!(
                        "an operation may select at most {} root fields, aliases included \
                         (limits.max_root_fields); it has {roots}",
                        self.max_root_fields
                    ),
                ));
            }
        }
        let mut aliases = 0usize;
        for op in doc.operations.iter() {
            aliases += count_aliases(&op.1.node.selection_set.node);
        }
        for fragment in doc.fragments.values() {
            aliases += count_aliases(&fragment.node.selection_set.node);
        }
        if aliases > self.max_aliases {
            return Err(refusal(
                "TOO_MANY_ALIASES",
                format!(
                    "a request may use at most {} aliases (limits.max_aliases); it has {aliases}",
                    self.max_aliases
                ),
            ));
        }
        Ok(())
    }
}

fn refusal(code: &'static str, message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

/// Root fields of a selection set, fragments expanded (each fragment once: a cycle is a
/// validation error reported later, and must not loop here).
fn root_fields(
    set: &Positioned<SelectionSet>,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
) -> usize {
    fn walk(
        set: &SelectionSet,
        fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
        seen: &mut HashSet<Name>,
    ) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node, fragments, seen),
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if !seen.insert(name.clone()) {
                        return 0;
                    }
                    fragments
                        .get(name)
                        .map_or(0, |f| walk(&f.node.selection_set.node, fragments, seen))
                }
            })
            .sum()
    }
    walk(&set.node, fragments, &mut HashSet::new())
}

/// Aliased fields written in a selection set, at any depth (fragment spreads are counted
/// where the fragment is defined).
fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OperationLimits = OperationLimits {
        max_root_fields: 3,
        max_root_mutations: 2,
        max_aliases: 2,
    };

    fn code(query: &str) -> Option<String> {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        LIMITS.check(&doc).err().map(|e| {
            e.extensions
                .and_then(|x| x.get("code").cloned())
                .map(|v| v.to_string())
                .unwrap_or_default()
        })
    }

    #[test]
    fn wide_operations_are_refused_with_the_rule_that_applies() {
        assert_eq!(code("{ a b c }"), None);
        assert_eq!(
            code("{ a b c d }").as_deref(),
            Some("\"TOO_MANY_ROOT_FIELDS\"")
        );
        // Fragments at the root count their fields; a fragment spread twice counts once.
        assert_eq!(
            code("{ a ...F ...F } fragment F on Q { b c d }").as_deref(),
            Some("\"TOO_MANY_ROOT_FIELDS\"")
        );
        assert_eq!(
            code("{ ... on Q { a b c d } }").as_deref(),
            Some("\"TOO_MANY_ROOT_FIELDS\"")
        );
        assert_eq!(
            code("mutation { a b c }").as_deref(),
            Some("\"TOO_MANY_ROOT_MUTATIONS\"")
        );
        assert_eq!(
            code("{ x: a { y: b { z: c } } }").as_deref(),
            Some("\"TOO_MANY_ALIASES\"")
        );
        assert_eq!(
            code("{ ...F } fragment F on Q { x: a y: b z: c }").as_deref(),
            Some("\"TOO_MANY_ALIASES\"")
        );
        // A fragment cycle (refused later by validation) does not loop here.
        assert_eq!(code("{ ...F } fragment F on Q { a ...F }"), None);
    }
}

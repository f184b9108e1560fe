//! Query cost as Shopify calculates it: scalars and enums 0, an object 1, a connection 2 plus
//! its page size times the cost of one node, a mutation 10. The requested cost is computed
//! from the query before it runs (with `first` as the page size); the actual cost from the
//! response (with the nodes actually returned).

use apollo_compiler::Schema;
use apollo_compiler::ast;
use apollo_compiler::executable::{ExecutableDocument, Field, Operation, Selection, SelectionSet};
use serde_json::{Map, Value};

pub(crate) const MUTATION_COST: u64 = 10;

pub(crate) struct Costing<'a> {
    pub schema: &'a Schema,
    pub doc: &'a ExecutableDocument,
    pub vars: &'a Map<String, Value>,
}

impl Costing<'_> {
    /// The fields of a selection set, through fragment spreads and inline fragments.
    fn fields<'s>(&'s self, set: &'s SelectionSet, out: &mut Vec<&'s Field>) {
        for sel in &set.selections {
            match sel {
                Selection::Field(f) => out.push(f),
                Selection::InlineFragment(i) => self.fields(&i.selection_set, out),
                Selection::FragmentSpread(s) => {
                    if let Some(frag) = self.doc.fragments.get(&s.fragment_name) {
                        self.fields(&frag.selection_set, out);
                    }
                }
            }
        }
    }

    pub fn requested(&self, op: &Operation) -> u64 {
        self.operation(op, None)
    }

    pub fn actual(&self, op: &Operation, data: &Value) -> u64 {
        self.operation(op, Some(data))
    }

    fn operation(&self, op: &Operation, data: Option<&Value>) -> u64 {
        if op.operation_type.is_mutation() {
            let mut fields = Vec::new();
            self.fields(&op.selection_set, &mut fields);
            return MUTATION_COST
                * fields.iter().filter(|f| !f.name.starts_with("__")).count() as u64;
        }
        self.set(&op.selection_set, data).ceil() as u64
    }

    fn page_size(&self, f: &Field) -> f64 {
        let arg = f
            .arguments
            .iter()
            .find(|a| a.name == "first" || a.name == "last");
        let n = match arg.map(|a| a.value.as_ref()) {
            Some(ast::Value::Int(i)) => i.try_to_i32().map(i64::from).unwrap_or(0),
            Some(ast::Value::Variable(v)) => self
                .vars
                .get(v.as_str())
                .and_then(Value::as_i64)
                .unwrap_or(0),
            _ => 0,
        };
        n.max(0) as f64
    }

    fn set(&self, set: &SelectionSet, data: Option<&Value>) -> f64 {
        let mut fields = Vec::new();
        self.fields(set, &mut fields);
        let mut cost = 0.0;
        for f in fields {
            let ty = f.definition.ty.inner_named_type();
            if self.schema.types.get(ty).is_none_or(|t| t.is_leaf()) {
                continue;
            }
            let sub = data.map(|d| d.get(f.response_key().as_str()).unwrap_or(&Value::Null));
            if ty.as_str().ends_with("Connection") {
                cost += self.connection(f, sub);
                continue;
            }
            cost += match sub {
                None => 1.0 + self.set(&f.selection_set, None),
                Some(Value::Null) => 0.0,
                Some(Value::Array(items)) => items
                    .iter()
                    .filter(|i| !i.is_null())
                    .map(|i| 1.0 + self.set(&f.selection_set, Some(i)))
                    .sum(),
                Some(obj) => 1.0 + self.set(&f.selection_set, Some(obj)),
            };
        }
        cost
    }

    /// 2 for the connection, plus each node (reached through `edges.node` or `nodes`).
    fn connection(&self, f: &Field, data: Option<&Value>) -> f64 {
        let mut inner = Vec::new();
        self.fields(&f.selection_set, &mut inner);
        // (selection of one node, the returned nodes under this response key)
        let mut paths: Vec<(&SelectionSet, Vec<&Value>)> = Vec::new();
        for g in inner {
            let returned = |key: &str| -> Vec<&Value> {
                data.and_then(|d| d.get(key))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default()
            };
            match g.name.as_str() {
                "nodes" => paths.push((&g.selection_set, returned(g.response_key().as_str()))),
                "edges" => {
                    let mut edge_fields = Vec::new();
                    self.fields(&g.selection_set, &mut edge_fields);
                    for h in edge_fields.into_iter().filter(|h| h.name == "node") {
                        let nodes = returned(g.response_key().as_str())
                            .into_iter()
                            .filter_map(|e| e.get(h.response_key().as_str()))
                            .collect();
                        paths.push((&h.selection_set, nodes));
                    }
                }
                _ => {}
            }
        }
        let nodes = paths
            .iter()
            .map(|(set, returned)| match data {
                None => self.page_size(f) * (1.0 + self.set(set, None)),
                Some(_) => returned.iter().map(|n| 1.0 + self.set(set, Some(n))).sum(),
            })
            .fold(0.0, f64::max);
        match data {
            Some(Value::Null) => 0.0,
            _ => 2.0 + nodes,
        }
    }
}

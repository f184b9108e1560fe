//! The bulk operation fields: `bulkOperation`, `currentBulkOperation`, `bulkOperationRunQuery`,
//! `bulkOperationRunMutation`, `bulkOperationCancel`, `stagedUploadsCreate`. The operations run
//! in `crate::bulk`; these only start, read and cancel them.

use apollo_compiler::resolvers::FieldError;
use serde_json::{Map, Value, json};

use super::*;
use crate::bulk::{BulkOp, Kind as BulkKind, Status};
use crate::catalog::{UserError, iso};

fn token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl<'c> Obj<'c> {
    fn bulk_record(&self, op: &BulkOp, ttl_ms: i64) -> Val<'c> {
        let status = op.status_at(self.ctx.now, ttl_ms);
        let url = format!("{}/bulk-results/{}", self.ctx.base_url, op.token);
        let has_file = op.object_count > 0;
        let (url, partial) = match status {
            Status::Completed => (json!(url), Value::Null),
            Status::Failed if has_file => (Value::Null, json!(url)),
            _ => (Value::Null, Value::Null),
        };
        record(
            self.ctx,
            "BulkOperation",
            vec![
                ("id", leaf(op.gid())),
                ("status", leaf(status.as_str())),
                ("type", leaf(op.kind.as_str())),
                ("errorCode", leaf(json!(op.error_code))),
                ("createdAt", leaf(iso(op.created_at))),
                ("completedAt", leaf(json!(op.completed_at.map(iso)))),
                ("objectCount", leaf(op.object_count.to_string())),
                ("rootObjectCount", leaf(op.root_count.to_string())),
                (
                    "fileSize",
                    leaf(json!((!status.running()).then(|| op.file_size.to_string()))),
                ),
                ("url", leaf(url)),
                ("partialDataUrl", leaf(partial)),
                ("query", leaf(op.query.clone())),
            ],
        )
    }

    pub(crate) fn bulk_query_field(
        &self,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let store = self.ctx.store.borrow();
        let ttl = store.bulk.settings.url_ttl_ms;
        let op = match name {
            "bulkOperation" => {
                let id = parse_gid(str_arg(args, "id").unwrap_or_default(), "BulkOperation")?;
                store.bulk.ops.get(&id)
            }
            _ => {
                let kind = match str_arg(args, "type") {
                    Some("MUTATION") => BulkKind::Mutation,
                    _ => BulkKind::Query,
                };
                store.bulk.ops.values().rev().find(|o| o.kind == kind)
            }
        };
        Ok(op.map_or_else(Val::null, |o| self.bulk_record(o, ttl)))
    }

    fn bulk_payload(&self, ty: &str, op: Option<u64>, errors: Vec<UserError>) -> Val<'c> {
        let store = self.ctx.store.borrow();
        let ttl = store.bulk.settings.url_ttl_ms;
        let op = op
            .and_then(|id| store.bulk.ops.get(&id))
            .map_or_else(Val::null, |o| self.bulk_record(o, ttl));
        let error_type = if ty == "BulkOperationCancelPayload" {
            "UserError"
        } else {
            "BulkOperationUserError"
        };
        let with_code = error_type != "UserError";
        record(
            self.ctx,
            ty,
            vec![
                ("bulkOperation", op),
                (
                    "userErrors",
                    user_errors(self.ctx, error_type, &errors, with_code),
                ),
            ],
        )
    }

    /// Refuses a new operation of `kind` while the shop runs as many as it may.
    fn bulk_limit(&self, kind: BulkKind, field: &str) -> Option<UserError> {
        let store = self.ctx.store.borrow();
        let max = store.bulk.settings.max_running.max(1);
        if store.bulk.running(kind) < max {
            return None;
        }
        Some(if max == 1 {
            UserError::new(
                &[field],
                "OPERATION_IN_PROGRESS",
                format!(
                    "A bulk {} operation for this app and shop is already in progress.",
                    kind.as_str().to_lowercase()
                ),
            )
        } else {
            UserError::new(
                &[field],
                "LIMIT_REACHED",
                format!(
                    "The limit of {max} running bulk {} operations for this app and shop is reached.",
                    kind.as_str().to_lowercase()
                ),
            )
        })
    }

    pub(crate) fn bulk_mutation_field(
        &self,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let ctx = self.ctx;
        match name {
            "bulkOperationRunQuery" => {
                let query = str_arg(args, "query").unwrap_or_default();
                let ty = "BulkOperationRunQueryPayload";
                if let Err(message) = crate::bulk::validate_query(&crate::graphql::SCHEMA, query) {
                    let e = UserError::new(&["query"], "INVALID", message);
                    return Ok(self.bulk_payload(ty, None, vec![e]));
                }
                if let Some(e) = self.bulk_limit(BulkKind::Query, "query") {
                    return Ok(self.bulk_payload(ty, None, vec![e]));
                }
                let id = ctx.store.borrow_mut().bulk.start(
                    BulkKind::Query,
                    query,
                    None,
                    ctx.scopes.clone(),
                    ctx.now,
                    token(),
                );
                Ok(self.bulk_payload(ty, Some(id), Vec::new()))
            }
            "bulkOperationRunMutation" => {
                let ty = "BulkOperationRunMutationPayload";
                let mutation = str_arg(args, "mutation").unwrap_or_default();
                let path = str_arg(args, "stagedUploadPath").unwrap_or_default();
                let valid = apollo_compiler::ExecutableDocument::parse_and_validate(
                    &crate::graphql::SCHEMA,
                    mutation,
                    "bulk.graphql",
                )
                .map_err(|e| e.errors.to_string())
                .and_then(|d| {
                    d.operations
                        .get(None)
                        .map_err(|e| e.message().to_string())
                        .and_then(|op| {
                            let roots = op.selection_set.selections.len();
                            (op.operation_type.is_mutation() && roots == 1)
                                .then_some(())
                                .ok_or_else(|| {
                                    "Bulk mutations must run exactly one mutation field.".into()
                                })
                        })
                });
                if let Err(message) = valid {
                    let e = UserError::new(&["mutation"], "INVALID", message);
                    return Ok(self.bulk_payload(ty, None, vec![e]));
                }
                let staged = ctx.store.borrow().bulk.staged.get(path).cloned();
                let Some(Some(file)) = staged else {
                    let e = UserError::new(
                        &["stagedUploadPath"],
                        "NO_SUCH_FILE",
                        "The JSONL file could not be found. Try uploading the file again, and check that you've entered the URL correctly for the stagedUploadPath mutation argument.",
                    );
                    return Ok(self.bulk_payload(ty, None, vec![e]));
                };
                if let Some(e) = self.bulk_limit(BulkKind::Mutation, "mutation") {
                    return Ok(self.bulk_payload(ty, None, vec![e]));
                }
                let id = ctx.store.borrow_mut().bulk.start(
                    BulkKind::Mutation,
                    mutation,
                    Some(file),
                    ctx.scopes.clone(),
                    ctx.now,
                    token(),
                );
                Ok(self.bulk_payload(ty, Some(id), Vec::new()))
            }
            "bulkOperationCancel" => {
                let ty = "BulkOperationCancelPayload";
                let id = parse_gid(str_arg(args, "id").unwrap_or_default(), "BulkOperation")?;
                let mut store = ctx.store.borrow_mut();
                let Some(op) = store.bulk.ops.get_mut(&id) else {
                    drop(store);
                    let e = UserError::new(&["id"], "INVALID", "Bulk operation does not exist");
                    return Ok(self.bulk_payload(ty, None, vec![e]));
                };
                if !op.status.running() {
                    let message = format!(
                        "A bulk operation cannot be canceled when it is {}",
                        op.status.as_str().to_lowercase()
                    );
                    drop(store);
                    let e = UserError::new(&["id"], "INVALID", message);
                    return Ok(self.bulk_payload(ty, Some(id), vec![e]));
                }
                op.status = Status::Canceled;
                op.completed_at = Some(ctx.now);
                drop(store);
                Ok(self.bulk_payload(ty, Some(id), Vec::new()))
            }
            _ => {
                // stagedUploadsCreate: a target per input; the file is PUT to its URL.
                let inputs = args
                    .get("input")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut targets = Vec::new();
                for i in inputs {
                    let filename = i["filename"].as_str().unwrap_or("upload");
                    let key = format!("tmp/{}/bulk/{}", token(), filename.replace('/', "_"));
                    ctx.store.borrow_mut().bulk.staged.insert(key.clone(), None);
                    let url = format!("{}/staged-uploads/{key}", ctx.base_url);
                    targets.push(record(
                        ctx,
                        "StagedMediaUploadTarget",
                        vec![
                            ("url", leaf(url.clone())),
                            ("resourceUrl", leaf(url)),
                            (
                                "parameters",
                                Val::List(vec![record(
                                    ctx,
                                    "StagedUploadParameter",
                                    vec![("name", leaf("key")), ("value", leaf(key))],
                                )]),
                            ),
                        ],
                    ));
                }
                Ok(record(
                    ctx,
                    "StagedUploadsCreatePayload",
                    vec![
                        ("stagedTargets", Val::List(targets)),
                        ("userErrors", Val::List(Vec::new())),
                    ],
                ))
            }
        }
    }
}

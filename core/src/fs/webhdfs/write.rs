//! The write side of the WebHDFS client (the `write` feature): two-step `CREATE` with a
//! streamed re-openable upload, `MKDIRS`, `RENAME` (`rename2` semantics), `DELETE`,
//! `SETPERMISSION`, `SETOWNER`.

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::{Method, StatusCode};

use super::wire::{BooleanEnvelope, LocationEnvelope};
use super::*;
use crate::fs::write::FileSystemWrite;

impl WebHdfs {
    /// One `CREATE`: the NameNode (no body) redirects to a DataNode, which takes the data and
    /// answers 201 Created. The upload body is made anew for every attempt.
    async fn create_once(
        &self,
        path: &str,
        params: &[(&str, &str)],
        upload: &Upload<'_>,
    ) -> Result<(), StepError> {
        // Open the local file first: a missing one costs no NameNode request.
        let (body, len) = upload.body().await.map_err(StepError::NameNode)?;
        let reply = self
            .send(op::CREATE, Method::PUT, path, params)
            .await
            .map_err(StepError::NameNode)?;
        let url = match redirect_location(op::CREATE, path, &reply).map_err(StepError::NameNode)? {
            Some(url) => url,
            // `noredirect=true` shape: 200 `{"Location": "..."}`.
            None => {
                let target: LocationEnvelope =
                    parse(op::CREATE, path, &reply.body).map_err(StepError::NameNode)?;
                parse_location(op::CREATE, path, &target.location).map_err(StepError::NameNode)?
            }
        };
        drop(reply);
        self.send_to_datanode(
            op::CREATE,
            Method::PUT,
            path,
            url,
            Some(body),
            self.transfer_timeout(len),
        )
        .await
        .map_err(StepError::DataNode)?;
        Ok(())
    }

    /// `CREATE` with the parameters of [`FileSystem::create`].
    async fn create_with(
        &self,
        path: &str,
        upload: Upload<'_>,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        let permission = permission.map(octal);
        let mut params = vec![("overwrite", if overwrite { "true" } else { "false" })];
        if let Some(p) = &permission {
            params.push(("permission", p.as_str()));
        }
        let params = params.as_slice();
        let upload = &upload;
        self.two_step(op::CREATE, path, move || {
            self.create_once(path, params, upload)
        })
        .await
    }
}

#[async_trait]
impl FileSystemWrite for WebHdfs {
    /// Two-step `CREATE` streaming the local file as the body (reopened for every attempt);
    /// the local file is left in place. Parent directories are created by the NameNode.
    ///
    /// Repetition: when the DataNode request fails retryably (connection, timeout, 5xx) the
    /// whole operation is repeated. If the failed attempt had in fact created the file, a
    /// repeated `overwrite = false` create answers [`FsError::AlreadyExists`] although this
    /// call created it: callers that take locks this way read the file back to tell.
    async fn create_from_local(
        &self,
        path: &str,
        local: &Path,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        self.create_with(path, Upload::File(local), overwrite, permission)
            .await
    }

    /// Two-step `CREATE` with `data` as the body; repetition as in
    /// [`FileSystem::create_from_local`] (a repeated `overwrite = false` create may answer
    /// [`FsError::AlreadyExists`] for a file this call created).
    async fn create(
        &self,
        path: &str,
        data: Bytes,
        overwrite: bool,
        permission: Option<u32>,
    ) -> Result<(), FsError> {
        self.create_with(path, Upload::Bytes(data), overwrite, permission)
            .await
    }

    /// `MKDIRS` (`permission` as octal, the NameNode's default 755 otherwise); an answer of
    /// `{"boolean": false}` is an error. Idempotent.
    async fn mkdirs(&self, path: &str, permission: Option<u32>) -> Result<(), FsError> {
        let permission = permission.map(octal);
        let params: Vec<(&str, &str)> = permission
            .iter()
            .map(|p| ("permission", p.as_str()))
            .collect();
        let reply = self.send(op::MKDIRS, Method::PUT, path, &params).await?;
        let answer: BooleanEnvelope = parse(op::MKDIRS, path, &reply.body)?;
        if answer.boolean {
            Ok(())
        } else {
            Err(FsError::InvalidResponse {
                op: op::MKDIRS,
                path: path.to_owned(),
                message: "the NameNode answered {\"boolean\": false}".to_owned(),
            })
        }
    }

    /// `RENAME` with `renameoptions=NONE`, which makes Hadoop's NameNode call
    /// `rename2(src, dst, NONE)` and answer 200 with an empty body, or an exception:
    /// `FileAlreadyExistsException` when `dst` exists (for a directory onto a directory),
    /// `IOException: Source .. and destination .. must both be directories` when a file meets
    /// a directory (both are [`FsError::AlreadyExists`] for `dst` here),
    /// `FileNotFoundException` when `src` or `dst`'s parent is missing ([`FsError::NotFound`]
    /// naming `src`, or `dst`'s parent when `src` exists), `ParentNotDirectoryException` when
    /// `dst`'s parent is a file.
    ///
    /// Repetition: when the answer of a successful rename is lost (connection or timeout), the
    /// repeated request fails with [`FsError::NotFound`] for `src`. That is not hidden here:
    /// a caller that gets `NotFound` after such trouble checks whether `dst` holds what it
    /// renamed. `NotFound` itself is never retried.
    async fn rename(&self, src: &str, dst: &str) -> Result<(), FsError> {
        let params = [("destination", dst), ("renameoptions", "NONE")];
        match self.send(op::RENAME, Method::PUT, src, &params).await {
            Ok(reply) => {
                let body = reply.body.trim_ascii();
                if body.is_empty() || body == b"null" {
                    return Ok(());
                }
                match serde_json::from_slice::<BooleanEnvelope>(body) {
                    // A server that ignored `renameoptions` and used the old rename.
                    Ok(answer) if !answer.boolean => Err(FsError::InvalidResponse {
                        op: op::RENAME,
                        path: src.to_owned(),
                        message: "the server answered {\"boolean\": false}: it does not \
                                  support renameoptions"
                            .to_owned(),
                    }),
                    Ok(_) => {
                        tracing::warn!(
                            cluster = %self.cluster, src, dst,
                            "The server answered RENAME with renameoptions=NONE by a boolean: \
                             it used the old rename semantics."
                        );
                        Ok(())
                    }
                    Err(_) => Ok(()),
                }
            }
            Err(FsError::AlreadyExists { .. }) => Err(FsError::AlreadyExists {
                path: dst.to_owned(),
            }),
            Err(FsError::Remote {
                exception, message, ..
            }) if exception == "IOException" && message.contains("must both be directories") => {
                Err(FsError::AlreadyExists {
                    path: dst.to_owned(),
                })
            }
            Err(FsError::NotFound { .. }) => {
                let missing = match self.file_status(src).await {
                    Ok(_) => crate::fs::parent_path(&crate::fs::normalize_path(dst)).to_owned(),
                    Err(_) => src.to_owned(),
                };
                Err(FsError::NotFound { path: missing })
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE` with `recursive`; `{"boolean": false}` means `path` did not exist. A delete
    /// repeated after a lost answer also says `false`.
    async fn delete(&self, path: &str, recursive: bool) -> Result<bool, FsError> {
        let params = [("recursive", if recursive { "true" } else { "false" })];
        let reply = self.send(op::DELETE, Method::DELETE, path, &params).await?;
        let answer: BooleanEnvelope = parse(op::DELETE, path, &reply.body)?;
        Ok(answer.boolean)
    }

    /// `SETPERMISSION` (octal). Idempotent.
    async fn set_permission(&self, path: &str, permission: u32) -> Result<(), FsError> {
        let permission = octal(permission);
        let params = [("permission", permission.as_str())];
        self.send(op::SETPERMISSION, Method::PUT, path, &params)
            .await?;
        Ok(())
    }

    /// `SETOWNER` with the names given. With neither, fails as the NameNode would
    /// (`IllegalArgumentException: Both owner and group are empty.`) without asking it.
    /// Idempotent.
    async fn set_owner(
        &self,
        path: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<(), FsError> {
        let mut params = Vec::with_capacity(2);
        if let Some(owner) = owner {
            params.push(("owner", owner));
        }
        if let Some(group) = group {
            params.push(("group", group));
        }
        if params.is_empty() {
            return Err(FsError::Remote {
                op: op::SETOWNER,
                path: path.to_owned(),
                status: StatusCode::BAD_REQUEST.as_u16(),
                exception: "IllegalArgumentException".to_owned(),
                message: "Both owner and group are empty.".to_owned(),
            });
        }
        self.send(op::SETOWNER, Method::PUT, path, &params).await?;
        Ok(())
    }
}

/// The data of a `CREATE`.
#[derive(Debug)]
enum Upload<'a> {
    /// In memory (cheap to clone for a repeated attempt).
    Bytes(Bytes),
    /// A local file, streamed (opened anew for a repeated attempt).
    File(&'a Path),
}

impl Upload<'_> {
    /// A request body and its length in bytes.
    async fn body(&self) -> Result<(reqwest::Body, u64), FsError> {
        match self {
            Self::Bytes(data) => Ok((reqwest::Body::from(data.clone()), data.len() as u64)),
            Self::File(local) => {
                let local_error = |source| FsError::Io {
                    path: local.display().to_string(),
                    source,
                };
                let file = tokio::fs::File::open(local).await.map_err(local_error)?;
                let len = file.metadata().await.map_err(local_error)?.len();
                let stream = tokio_util::io::ReaderStream::new(file);
                Ok((reqwest::Body::wrap_stream(stream), len))
            }
        }
    }
}

/// Permission bits as WebHDFS wants them: an octal string (`755`, `1777`).
fn octal(permission: u32) -> String {
    format!("{permission:o}")
}

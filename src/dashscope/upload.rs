//! Local input files: DashScope's temporary-upload flow (getPolicy, then a signed
//! multipart POST to OSS, then `oss://key`), or for wan2.5 an inline data URI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use super::client::{Client, api_error, transport};
use super::error::ClientError;
use super::models::Model;
use super::spec::{ImageRef, JobSpec};
use super::validate::{
    ValidationError, check_image_bytes, check_local_images, input_rules, read_image_file, validate,
};

/// getPolicy's `data`: everything the signed OSS form needs.
#[derive(Debug, Deserialize)]
struct Policy {
    policy: String,
    signature: String,
    upload_dir: String,
    upload_host: String,
    oss_access_key_id: String,
    x_oss_object_acl: String,
    x_oss_forbid_overwrite: String,
}

#[derive(Deserialize)]
struct PolicyAnswer {
    data: Policy,
}

impl Client {
    /// Resolves every local file in `spec`: checked first (`check_local_images`), then
    /// inlined as a data URI for wan2.5 (which takes them) or uploaded for the other
    /// models. The result holds only remote references: store it and create from it, so
    /// a retry within the upload's 48 hours does not upload again.
    pub async fn prepare(&self, spec: &JobSpec) -> Result<JobSpec, ClientError> {
        validate(spec)?;
        let checked = spec.clone();
        tokio::task::spawn_blocking(move || check_local_images(&checked))
            .await
            .map_err(|e| ClientError::Io(format!("checking the input images stopped: {e}")))??;

        // The same file named twice (say as base and mask) is resolved once.
        let mut resolved: HashMap<PathBuf, ImageRef> = HashMap::new();
        let mut out = spec.clone();
        let model = spec.model;
        for image in out
            .base_image
            .iter_mut()
            .chain(out.mask_image.iter_mut())
            .chain(out.images.iter_mut())
        {
            let ImageRef::File(path) = image else {
                continue;
            };
            let remote = match resolved.get(path) {
                Some(remote) => remote.clone(),
                None => {
                    // Already checked above, with the mask-matches-base rule; not again.
                    let file = read_image(model, path, false).await?;
                    let remote = if input_rules(model).is_some_and(|r| r.data_uri) {
                        ImageRef::DataUri(data_uri(file).await?)
                    } else {
                        ImageRef::Url(self.upload_file(model, path, file).await?)
                    };
                    resolved.insert(path.clone(), remote.clone());
                    remote
                }
            };
            *image = remote;
        }
        Ok(out)
    }

    /// Uploads a local image to the service's temporary storage for `model` and returns
    /// its `oss://` key (valid 48 hours, for this model and account, reusable by many tasks).
    pub async fn upload(&self, model: Model, path: &Path) -> Result<String, ClientError> {
        let file = read_image(model, path, true).await?;
        self.upload_file(model, path, file).await
    }

    async fn upload_file(
        &self,
        model: Model,
        path: &Path,
        file: CheckedFile,
    ) -> Result<String, ClientError> {
        let request = self.api_query(
            Method::GET,
            "/uploads",
            &[
                ("action", "getPolicy"),
                ("model", self.wire_model_id(model)?),
            ],
        );
        let policy = self.send_json::<PolicyAnswer>(request).await?.data;
        if !(policy.upload_host.starts_with("http://")
            || policy.upload_host.starts_with("https://"))
        {
            return Err(ClientError::Protocol(format!(
                "getPolicy gave upload_host `{}`, not an http(s) URL",
                crate::text::sanitize(&policy.upload_host)
            )));
        }
        let key = format!(
            "{}/{}",
            policy.upload_dir.trim_end_matches('/'),
            object_name(path, file.extension)
        );

        let part = Part::bytes(file.bytes)
            .file_name(object_name(path, file.extension))
            .mime_str(file.mime)
            .map_err(transport)?;
        // OSS reads the fields in order and wants `file` last.
        let form = Form::new()
            .text("OSSAccessKeyId", policy.oss_access_key_id)
            .text("Signature", policy.signature)
            .text("policy", policy.policy)
            .text("key", key.clone())
            .text("x-oss-object-acl", policy.x_oss_object_acl)
            .text("x-oss-forbid-overwrite", policy.x_oss_forbid_overwrite)
            .text("success_action_status", "200")
            .text("x-oss-content-type", file.mime)
            .part("file", part);
        // The form is signed by the policy; the API key is not for OSS and is not sent.
        let response = self
            .http()
            .post(&policy.upload_host)
            .multipart(form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        tracing::debug!(
            method = "POST",
            path = "upload_host",
            status = status.as_u16(),
            "temporary upload"
        );
        if status.as_u16() != 200 {
            return Err(if status.is_success() {
                ClientError::Protocol(format!("the upload answered HTTP {status}, not 200"))
            } else {
                api_error(response).await
            });
        }
        Ok(format!("oss://{key}"))
    }
}

/// A local image, read and identified.
struct CheckedFile {
    bytes: Vec<u8>,
    mime: &'static str,
    extension: &'static str,
}

/// Reads a local image; with `check`, also against the model's rules (decoding it).
async fn read_image(model: Model, path: &Path, check: bool) -> Result<CheckedFile, ClientError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let bytes = read_image_file(model, "image", &path)?;
        if check {
            check_image_bytes(model, "image", &bytes)?;
        }
        let format = image::guess_format(&bytes).map_err(|_| {
            ValidationError::new("image", format!("{} is not an image", path.display()))
        })?;
        Ok::<_, ValidationError>(CheckedFile {
            mime: format.to_mime_type(),
            extension: format.extensions_str().first().copied().unwrap_or("img"),
            bytes,
        })
    })
    .await
    .map_err(|e| ClientError::Io(format!("reading the image stopped: {e}")))?
    .map_err(ClientError::from)
}

async fn data_uri(file: CheckedFile) -> Result<String, ClientError> {
    let encoded = tokio::task::spawn_blocking(move || {
        base64::engine::general_purpose::STANDARD.encode(&file.bytes)
    })
    .await
    .map_err(|e| ClientError::Io(format!("encoding the image stopped: {e}")))?;
    Ok(format!("data:{};base64,{encoded}", file.mime))
}

/// The object's name inside the upload directory: the file's own name reduced to
/// URL-safe ASCII (the edit model refuses URLs with Chinese characters), with the
/// extension of its real format.
fn object_name(path: &Path, extension: &str) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let safe = if safe.trim_matches('_').is_empty() {
        "image".to_string()
    } else {
        safe
    };
    format!("{safe}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_url_safe_and_keep_the_real_format() {
        assert_eq!(
            object_name(Path::new("/tmp/cat photo.JPG"), "png"),
            "cat_photo.png"
        );
        assert_eq!(object_name(Path::new("/tmp/猫.png"), "png"), "image.png");
        assert_eq!(
            object_name(Path::new("/tmp/a-b_c.tiff"), "tif"),
            "a-b_c.tif"
        );
    }

    #[test]
    fn a_policy_answer_parses_with_extra_fields() {
        let answer: PolicyAnswer = serde_json::from_str(
            r#"{"data":{"policy":"p","signature":"s","upload_dir":"dashscope-instant/h/2025-01-01/u",
            "upload_host":"https://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com","expire_in_seconds":300,
            "max_file_size_mb":1024,"capacity_limit_mb":999999999,"oss_access_key_id":"id",
            "x_oss_object_acl":"private","x_oss_forbid_overwrite":"true"},"request_id":"r"}"#,
        )
        .unwrap();
        assert_eq!(answer.data.upload_dir, "dashscope-instant/h/2025-01-01/u");
        assert_eq!(answer.data.x_oss_forbid_overwrite, "true");
    }
}

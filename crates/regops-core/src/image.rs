//! Image references as the kubelet reads them, and which registry server they pull from.

/// The registry host and repository path of an image reference, normalised the way the
/// kubelet does: `nginx` is `docker.io/library/nginx`, `me/app` is `docker.io/me/app`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub host: String,
    pub repository: String,
}

impl ImageRef {
    /// Follows `splitDockerDomain` of distribution/reference (normalize.go), which the
    /// container runtimes use: the first path component is a registry host when it has a `.`
    /// or a `:`, is `localhost`, or has an upper-case letter; otherwise the image is on Docker
    /// Hub. `index.docker.io` is Docker Hub, and a Docker Hub repository without a `/` is an
    /// official image under `library/` (`docker.io/nginx` is `docker.io/library/nginx`). A
    /// digest (`@sha256:…`) and a tag (`:` in the last component) are not part of the
    /// repository.
    pub fn parse(image: &str) -> ImageRef {
        let image = image.trim();
        // Drop the digest, then the tag (a ':' after the last '/').
        let no_digest = image.split('@').next().unwrap_or(image);
        let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
        let name = match no_digest[last_slash..].find(':') {
            Some(i) => &no_digest[..last_slash + i],
            None => no_digest,
        };
        let (domain, remainder) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first, rest)
            }
            _ => ("docker.io", name),
        };
        let hub = matches!(domain, "docker.io" | "index.docker.io");
        let repository = if hub && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_string()
        };
        ImageRef {
            host: normalize_host(domain),
            repository,
        }
    }

    /// `host/repository`.
    pub fn full(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// Whether a registry server (a `.dockerconfigjson` key: `host[:port][/path]`, or Docker
    /// Hub's `https://index.docker.io/v1/`) serves this image, as the kubelet matches keys.
    pub fn pulls_from(&self, server: &str) -> bool {
        if server == regops_spec::DOCKER_HUB_SERVER {
            return self.host == "docker.io";
        }
        let (server_host, server_path) = match server.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (server, None),
        };
        normalize_host(server_host) == self.host
            && server_path.is_none_or(|p| {
                self.repository == p || self.repository.starts_with(&format!("{p}/"))
            })
    }
}

fn normalize_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_string(),
    }
}

/// A `*` glob over the image as written and as normalised (`docker.io/library/nginx:1`).
pub fn pattern_matches(pattern: &str, image: &str) -> bool {
    let r = ImageRef::parse(image);
    let tail = image.split_once('@').map_or(image, |(a, _)| a);
    let tag = tail
        .rsplit_once('/')
        .map_or(tail, |(_, t)| t)
        .split_once(':')
        .map(|(_, t)| format!(":{t}"))
        .unwrap_or_default();
    let normalized = format!("{}{}", r.full(), tag);
    glob(pattern, image) || glob(pattern, &normalized) || glob(pattern, &r.full())
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !text.starts_with(part) {
                return false;
            }
            pos = part.len();
        } else if i == parts.len() - 1 {
            return text.len() >= pos + part.len() && text[pos..].ends_with(part);
        } else {
            match text[pos..].find(part) {
                Some(j) => pos += j + part.len(),
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_the_kubelet() {
        let cases = [
            ("nginx", "docker.io", "library/nginx"),
            ("nginx:1.27", "docker.io", "library/nginx"),
            ("me/app:2", "docker.io", "me/app"),
            ("docker.io/library/redis", "docker.io", "library/redis"),
            ("index.docker.io/me/app", "docker.io", "me/app"),
            (
                "harbor.example.com/web/app:1",
                "harbor.example.com",
                "web/app",
            ),
            (
                "registry.local:5000/app@sha256:abc",
                "registry.local:5000",
                "app",
            ),
            ("localhost/app", "localhost", "app"),
            ("quay.io/org/img:v1", "quay.io", "org/img"),
            // Docker Hub spelled out: official images are under library/.
            ("docker.io/nginx", "docker.io", "library/nginx"),
            ("docker.io/nginx:1.27", "docker.io", "library/nginx"),
            ("index.docker.io/nginx", "docker.io", "library/nginx"),
            ("index.docker.io/me/app", "docker.io", "me/app"),
            // A port makes a host; localhost with a port too.
            ("localhost:5000/x", "localhost:5000", "x"),
            ("localhost:5000/x:tag", "localhost:5000", "x"),
            // Digests, and a tag with a digest.
            ("nginx@sha256:0123", "docker.io", "library/nginx"),
            ("nginx:1.27@sha256:0123", "docker.io", "library/nginx"),
            (
                "harbor.example.com/a/b:1@sha256:0123",
                "harbor.example.com",
                "a/b",
            ),
            // An upper-case first component is a host (the grammar's domain test).
            ("Registry/app", "Registry", "app"),
            ("me/app", "docker.io", "me/app"),
            // Deep paths.
            ("ghcr.io/org/team/img:v2", "ghcr.io", "org/team/img"),
        ];
        for (image, host, repo) in cases {
            let r = ImageRef::parse(image);
            assert_eq!(
                (r.host.as_str(), r.repository.as_str()),
                (host, repo),
                "{image}"
            );
        }
    }

    #[test]
    fn servers_match_as_the_kubelet_matches_keys() {
        assert!(ImageRef::parse("nginx").pulls_from("https://index.docker.io/v1/"));
        assert!(!ImageRef::parse("quay.io/a/b").pulls_from("https://index.docker.io/v1/"));
        assert!(ImageRef::parse("harbor.example.com/web/app").pulls_from("harbor.example.com"));
        assert!(ImageRef::parse("quay.io/myorg/app").pulls_from("quay.io/myorg"));
        assert!(!ImageRef::parse("quay.io/other/app").pulls_from("quay.io/myorg"));
        assert!(!ImageRef::parse("harbor.example.com:8443/x").pulls_from("harbor.example.com"));
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches(
            "harbor.example.com/*",
            "harbor.example.com/web/app:1"
        ));
        assert!(pattern_matches("docker.io/*", "nginx:1.27"));
        assert!(pattern_matches("docker.io/library/nginx*", "nginx"));
        assert!(pattern_matches(
            "docker.io/library/nginx*",
            "docker.io/nginx"
        ));
        assert!(pattern_matches(
            "docker.io/library/nginx*",
            "index.docker.io/nginx:1"
        ));
        assert!(!pattern_matches("quay.io/*", "nginx"));
        assert!(pattern_matches("*/web/*", "harbor.example.com/web/app:1"));
    }
}

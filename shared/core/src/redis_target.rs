//! The forms `REDIS_URL` takes, parsed once at start-up so that a mistake stops the process
//! with a message naming the variable instead of surfacing as a connection error later.
//!
//! - `redis://[user:password@]host[:port][/db]`: one server, the redis crate's own URL form
//!   (its `rediss://` is refused here with the crate's reason: it is built without TLS);
//! - `redis+cluster://[user:password@]host:port,host:port,...`: seed nodes of a Redis
//!   Cluster (any reachable one is enough; the client learns the rest from it);
//! - `redis+sentinel://[user:password@]host:port,host:port,.../<master name>[/db]`:
//!   the Sentinels watching the primary called `<master name>`. The credentials are the
//!   primary's; Sentinels that require their own take `?sentinel_username=…&sentinel_password=…`.
//!
//! A node without a port gets the usual one: 6379 for a cluster node, 26379 for a Sentinel.

use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// Where the Redis of a deployment is, as `REDIS_URL` says.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server.
    Single(ConnectionInfo),
    /// A Redis Cluster, by some of its nodes.
    Cluster {
        /// The seed nodes, each with the same credentials.
        nodes: Vec<ConnectionInfo>,
    },
    /// A primary watched by Sentinels.
    Sentinel {
        /// The Sentinels to ask (with their own credentials, if any).
        sentinels: Vec<ConnectionInfo>,
        /// The name the Sentinels know the primary by.
        master: String,
        /// Database and credentials for the primary (and its replicas).
        node: RedisConnectionInfo,
    },
}

impl std::fmt::Debug for RedisTarget {
    /// Addresses only: the credentials never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs = |nodes: &[ConnectionInfo]| -> Vec<String> {
            nodes.iter().map(|n| n.addr().to_string()).collect()
        };
        match self {
            Self::Single(info) => f
                .debug_tuple("Single")
                .field(&info.addr().to_string())
                .finish(),
            Self::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field("nodes", &addrs(nodes))
                .finish(),
            Self::Sentinel {
                sentinels, master, ..
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", &addrs(sentinels))
                .field("master", master)
                .finish(),
        }
    }
}

/// Why `REDIS_URL` was refused; the message completes "REDIS_URL …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    /// An unknown scheme.
    #[error("scheme must be one of redis, rediss, redis+cluster, redis+sentinel, got `{0}`")]
    Scheme(String),
    /// Not `scheme://…` at all.
    #[error("is not a URL (expected e.g. redis://host:6379)")]
    NotAUrl,
    /// No node listed.
    #[error("names no host")]
    NoHost,
    /// A node the redis crate cannot read.
    #[error("has an invalid node `{node}` ({reason})")]
    Node {
        /// The node as written.
        node: String,
        /// What the redis crate said.
        reason: String,
    },
    /// A cluster URL with a database: a cluster has only database 0.
    #[error("names a database, but a Redis Cluster has only database 0")]
    ClusterDatabase,
    /// A Sentinel URL without `/<master name>`.
    #[error("names no master: expected redis+sentinel://host:26379,.../<master name>[/db]")]
    NoMaster,
    /// A database that is not a number.
    #[error("has database `{0}`, expected a number")]
    Database(String),
    /// A query parameter this form does not take.
    #[error("has an unknown parameter `{0}`")]
    Parameter(String),
}

const CLUSTER_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;

impl RedisTarget {
    /// Reads `REDIS_URL`.
    pub fn parse(url: &str) -> Result<Self, RedisUrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(RedisUrlError::NotAUrl)?;
        match scheme {
            "redis" | "rediss" => {
                url.into_connection_info()
                    .map(Self::Single)
                    .map_err(|e| RedisUrlError::Node {
                        node: redact(url),
                        reason: e.to_string(),
                    })
            }
            "redis+cluster" => parse_cluster(rest),
            "redis+sentinel" => parse_sentinel(rest),
            other => Err(RedisUrlError::Scheme(other.to_owned())),
        }
    }
}

/// The parts of `[userinfo@]hosts[/path][?query]`.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: Vec<&'a str>,
    query: Option<&'a str>,
}

fn split(rest: &str) -> Result<Parts<'_>, RedisUrlError> {
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path),
        None => (rest, ""),
    };
    // The last `@`: a password may hold an encoded one, never a raw one before the hosts.
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.trim().is_empty()).collect();
    if hosts.is_empty() {
        return Err(RedisUrlError::NoHost);
    }
    Ok(Parts {
        userinfo,
        hosts,
        path: path.split('/').filter(|p| !p.is_empty()).collect(),
        query,
    })
}

/// `host`, with `default_port` unless it names one (`[v6]:port` included).
fn with_port(host: &str, default_port: u16) -> String {
    let has_port = match host.rsplit_once(':') {
        Some((before, port)) => {
            port.chars().all(|c| c.is_ascii_digit())
                && !port.is_empty()
                && (!before.contains(':') || before.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    }
}

/// One node through the redis crate's own parser (which decodes the credentials).
fn node(
    userinfo: Option<&str>,
    host: &str,
    default_port: u16,
) -> Result<ConnectionInfo, RedisUrlError> {
    let host = with_port(host.trim(), default_port);
    let url = match userinfo {
        Some(userinfo) => format!("redis://{userinfo}@{host}"),
        None => format!("redis://{host}"),
    };
    url.as_str()
        .into_connection_info()
        .map_err(|e| RedisUrlError::Node {
            node: host,
            reason: e.to_string(),
        })
}

fn parse_cluster(rest: &str) -> Result<RedisTarget, RedisUrlError> {
    let parts = split(rest)?;
    if let Some((name, _)) =
        url::form_urlencoded::parse(parts.query.unwrap_or("").as_bytes()).next()
    {
        return Err(RedisUrlError::Parameter(name.into_owned()));
    }
    match parts.path.as_slice() {
        [] | ["0"] => {}
        _ => return Err(RedisUrlError::ClusterDatabase),
    }
    let nodes = parts
        .hosts
        .iter()
        .map(|host| node(parts.userinfo, host, CLUSTER_PORT))
        .collect::<Result<_, _>>()?;
    Ok(RedisTarget::Cluster { nodes })
}

fn parse_sentinel(rest: &str) -> Result<RedisTarget, RedisUrlError> {
    let parts = split(rest)?;
    let (master, db) = match parts.path.as_slice() {
        [master] => (*master, 0),
        [master, db] => (
            *master,
            db.parse::<i64>()
                .map_err(|_| RedisUrlError::Database((*db).to_owned()))?,
        ),
        [] => return Err(RedisUrlError::NoMaster),
        [_, _, extra, ..] => return Err(RedisUrlError::Database((*extra).to_owned())),
    };
    let (mut sentinel_user, mut sentinel_password) = (None, None);
    for (name, value) in url::form_urlencoded::parse(parts.query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "sentinel_username" => sentinel_user = Some(value.into_owned()),
            "sentinel_password" => sentinel_password = Some(value.into_owned()),
            other => return Err(RedisUrlError::Parameter(other.to_owned())),
        }
    }
    let sentinels = parts
        .hosts
        .iter()
        .map(|host| {
            let info = node(None, host, SENTINEL_PORT)?;
            let mut settings = info.redis_settings().clone();
            if let Some(user) = &sentinel_user {
                settings = settings.set_username(user);
            }
            if let Some(password) = &sentinel_password {
                settings = settings.set_password(password);
            }
            Ok(info.set_redis_settings(settings))
        })
        .collect::<Result<_, _>>()?;
    // The primary's credentials, decoded by the same parser as every other node's.
    let node = node(parts.userinfo, "127.0.0.1", CLUSTER_PORT)?
        .redis_settings()
        .clone()
        .set_db(db);
    Ok(RedisTarget::Sentinel {
        sentinels,
        master: master.to_owned(),
        node,
    })
}

/// `url` without its password, for an error message.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let hosts = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
            format!("{scheme}://***@{hosts}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use redis::ConnectionAddr;

    use super::*;

    fn addrs(nodes: &[ConnectionInfo]) -> Vec<String> {
        nodes.iter().map(|n| n.addr().to_string()).collect()
    }

    #[test]
    fn a_plain_url_is_one_server_read_by_the_redis_crate() {
        let RedisTarget::Single(info) =
            RedisTarget::parse("redis://:s%40cret@cache.internal:6380/2").unwrap()
        else {
            panic!("not a single server");
        };
        assert_eq!(
            info.addr(),
            &ConnectionAddr::Tcp("cache.internal".into(), 6380)
        );
        assert_eq!(info.redis_settings().password(), Some("s@cret"));
        assert_eq!(info.redis_settings().db(), 2);
    }

    #[test]
    fn a_cluster_url_lists_its_seed_nodes_with_shared_credentials() {
        let RedisTarget::Cluster { nodes } = RedisTarget::parse(
            "redis+cluster://app:p%2Fw@10.0.0.1:7000,10.0.0.2:7001,redis-c,[::1]:7002",
        )
        .unwrap() else {
            panic!("not a cluster");
        };
        let tcp: Vec<&ConnectionAddr> = nodes.iter().map(|n| n.addr()).collect();
        assert_eq!(
            tcp,
            [
                &ConnectionAddr::Tcp("10.0.0.1".into(), 7000),
                &ConnectionAddr::Tcp("10.0.0.2".into(), 7001),
                &ConnectionAddr::Tcp("redis-c".into(), 6379),
                &ConnectionAddr::Tcp("::1".into(), 7002),
            ]
        );
        for node in &nodes {
            assert_eq!(node.redis_settings().username(), Some("app"));
            assert_eq!(node.redis_settings().password(), Some("p/w"));
        }
    }

    #[test]
    fn a_sentinel_url_names_the_master_its_database_and_both_sets_of_credentials() {
        let RedisTarget::Sentinel {
            sentinels,
            master,
            node,
        } = RedisTarget::parse(
            "redis+sentinel://:primary-pw@s1:26380,s2/orders-primary/3?sentinel_password=s%20pw",
        )
        .unwrap()
        else {
            panic!("not sentinel");
        };
        assert_eq!(addrs(&sentinels), ["s1:26380", "s2:26379"]);
        assert_eq!(master, "orders-primary");
        assert_eq!(node.db(), 3);
        assert_eq!(node.password(), Some("primary-pw"));
        for sentinel in &sentinels {
            assert_eq!(sentinel.redis_settings().password(), Some("s pw"));
        }
        let RedisTarget::Sentinel {
            sentinels, node, ..
        } = RedisTarget::parse("redis+sentinel://s1/mymaster").unwrap()
        else {
            panic!("not sentinel");
        };
        assert_eq!(node.db(), 0);
        assert_eq!(node.password(), None);
        assert_eq!(sentinels[0].redis_settings().password(), None);
    }

    #[test]
    fn malformed_urls_are_refused_saying_what_is_wrong() {
        for (url, expected) in [
            ("http://127.0.0.1", RedisUrlError::Scheme("http".into())),
            ("127.0.0.1:6379", RedisUrlError::NotAUrl),
            ("redis+cluster://", RedisUrlError::NoHost),
            ("redis+cluster://a:1,,b:2/1", RedisUrlError::ClusterDatabase),
            (
                "redis+cluster://a:1?read_from_replicas=1",
                RedisUrlError::Parameter("read_from_replicas".into()),
            ),
            ("redis+sentinel://s1:26379", RedisUrlError::NoMaster),
            ("redis+sentinel://s1:26379/", RedisUrlError::NoMaster),
            (
                "redis+sentinel://s1/mymaster/first",
                RedisUrlError::Database("first".into()),
            ),
            (
                "redis+sentinel://s1/mymaster?password=x",
                RedisUrlError::Parameter("password".into()),
            ),
        ] {
            assert_eq!(RedisTarget::parse(url).unwrap_err(), expected, "{url}");
        }
        let bad_port = RedisTarget::parse("redis+cluster://a:1,b:99999").unwrap_err();
        assert!(
            matches!(&bad_port, RedisUrlError::Node { node, .. } if node == "b:99999"),
            "{bad_port:?}"
        );
    }

    #[test]
    fn errors_and_debug_output_never_show_the_password() {
        let err = RedisTarget::parse("redis://:hunter2@host:notaport").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let target = RedisTarget::parse("redis+sentinel://:hunter2@s1/m").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
        let target = RedisTarget::parse("redis+cluster://:hunter2@a:1").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}

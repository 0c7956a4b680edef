// Package auth decides who may call what on a coordinator.
//
// # Overview
//
// Every caller has one of three roles:
//
//   - initiator: starts and finishes transactions (Begin, RegisterBranch,
//     Commit, Rollback) and reads them (GetTransaction);
//   - participant: asks about a transaction it holds a reservation for
//     (CheckBack) and reads transactions (GetTransaction);
//   - operator: the AdminService (list, show, retry now, resolve a branch
//     by hand) and everything an initiator may read.
//
// One table (Policy) names the roles allowed on each method; the gRPC
// interceptors and the HTTP middleware both decide from it. Health checks
// and server reflection are open to everyone (reflection can be turned off
// where it is served). A method the table does not name is refused.
//
// # Identities
//
// A caller proves an identity in one of two ways, usable together:
//
//   - a bearer token, in gRPC metadata "authorization: Bearer <token>" or
//     the HTTP Authorization header, from a static token file in the
//     Kubernetes static-token style, one "token,name,role" line per
//     identity ("#" starts a comment); tokens are compared by their SHA-256
//     digest, in constant time, and the file is re-read by Reload (the
//     coordinator calls it on SIGHUP);
//   - a client certificate verified by mutual TLS, whose URI SANs, DNS
//     SANs or Common Name (in that order) are mapped to a name and role by
//     a list of "certificate-name=role" entries.
//
// A request carrying a token is judged by the token alone: a wrong token
// is refused even when a good certificate came with it.
//
// # Failure handling
//
// No credentials, or a token that matches none, is Unauthenticated (HTTP
// 401). A known identity whose role may not call the method is
// PermissionDenied (HTTP 403), and so is a verified certificate that maps
// to no role. Error texts never repeat a token. A token file that cannot be
// read or parsed at Reload leaves the previous tokens in force and returns
// the error, so a typo in an edited file cannot lock every caller out or
// let anyone in.
package auth

package auth

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Open marks a method anyone may call, authenticated or not.
const Open Role = "*"

// Policy is the one table of who may call what: full gRPC method names
// ("/package.Service/Method") or whole services ("/package.Service/*")
// mapped to the roles allowed. The HTTP endpoints are checked against the
// gRPC method they serve.
var Policy = map[string][]Role{
	"/settle.tcc.v1.CoordinatorService/Begin":          {Initiator},
	"/settle.tcc.v1.CoordinatorService/RegisterBranch": {Initiator},
	"/settle.tcc.v1.CoordinatorService/Commit":         {Initiator},
	"/settle.tcc.v1.CoordinatorService/Rollback":       {Initiator},
	"/settle.tcc.v1.CoordinatorService/GetTransaction": {Initiator, Participant, Operator},
	"/settle.tcc.v1.CoordinatorService/CheckBack":      {Participant},
	"/settle.admin.v1.AdminService/*":                  {Operator},
	// The admin reads (the console's pages) are open to viewers too.
	"/settle.admin.v1.AdminService/ListTransactions":      {Operator, Viewer},
	"/settle.admin.v1.AdminService/GetTransaction":        {Operator, Viewer},
	"/settle.admin.v1.AdminService/GetTransactionHistory": {Operator, Viewer},
	"/settle.admin.v1.AdminService/GetOverview":           {Operator, Viewer},
	"/grpc.health.v1.Health/*":                            {Open},
	"/grpc.reflection.v1.ServerReflection/*":              {Open},
	"/grpc.reflection.v1alpha.ServerReflection/*":         {Open},
	// HTTP-only endpoints, named like methods.
	"http:metrics": {Open},
	"http:healthz": {Open},
	"http:pprof":   {Operator},
	"http:openapi": {Open},
	// The console's static files; the API calls its pages make are
	// authorized as the methods they call.
	"http:console": {Open},
}

// rolesFor returns the roles allowed on method, and whether the table
// names it.
func rolesFor(method string) ([]Role, bool) {
	if r, ok := Policy[method]; ok {
		return r, true
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if r, ok := Policy[method[:i]+"/*"]; ok {
			return r, true
		}
	}
	return nil, false
}

// IsOpen reports whether anyone may call method without credentials.
func IsOpen(method string) bool {
	r, _ := rolesFor(method)
	return slices.Contains(r, Open)
}

// Authorize decides a call of method with the given Authorization value
// and client certificate: the identity, or an error with the gRPC code
// Unauthenticated or PermissionDenied. An open method returns ok with a
// zero identity when no credentials came.
func (a *Authenticator) Authorize(method, authorization string, leaf *x509.Certificate) (Identity, error) {
	roles, known := rolesFor(method)
	if !known {
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s is not open to any role", method)
	}
	if slices.Contains(roles, Open) {
		id, _ := a.Authenticate(authorization, leaf)
		return id, nil
	}
	id, err := a.Authenticate(authorization, leaf)
	switch {
	case errors.Is(err, ErrUnmappedCert):
		return Identity{}, status.Error(codes.PermissionDenied, err.Error())
	case err != nil:
		return Identity{}, status.Error(codes.Unauthenticated, err.Error())
	}
	if !slices.Contains(roles, id.Role) {
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s (%s) may not call %s", id.Name, id.Role, method)
	}
	return id, nil
}

// verifiedLeaf returns the leaf of the first verified chain, or nil.
func verifiedLeaf(chains [][]*x509.Certificate) *x509.Certificate {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil
	}
	return chains[0][0]
}

func grpcCredentials(ctx context.Context) (authorization string, leaf *x509.Certificate) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authorization = v[0]
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			leaf = verifiedLeaf(ti.State.VerifiedChains)
		}
	}
	return authorization, leaf
}

func (a *Authenticator) authorizeGRPC(ctx context.Context, method string) (context.Context, error) {
	authorization, leaf := grpcCredentials(ctx)
	id, err := a.Authorize(method, authorization, leaf)
	if err != nil {
		return nil, err
	}
	if id.Name != "" {
		ctx = WithIdentity(ctx, id)
	}
	return ctx, nil
}

// UnaryInterceptor authorizes every unary call by Policy and puts the
// caller's identity in the handler's context.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authorizeGRPC(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authorizes every streaming call by Policy.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authorizeGRPC(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// HTTP authorizes requests to h as calls of method (a Policy key), with
// the Authorization header or the verified client certificate, and puts
// the identity in the request's context. Refusals are JSON
// {"code": ..., "message": ...} with status 401 or 403.
func (a *Authenticator) HTTP(method string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var leaf *x509.Certificate
		if r.TLS != nil {
			leaf = verifiedLeaf(r.TLS.VerifiedChains)
		}
		id, err := a.Authorize(method, r.Header.Get("Authorization"), leaf)
		if err != nil {
			st := status.Convert(err)
			code, httpCode := "PERMISSION_DENIED", http.StatusForbidden
			if st.Code() == codes.Unauthenticated {
				code, httpCode = "UNAUTHENTICATED", http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="settle"`)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(httpCode)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": st.Message()})
			return
		}
		if id.Name != "" {
			r = r.WithContext(WithIdentity(r.Context(), id))
		}
		h.ServeHTTP(w, r)
	})
}

// LogAttr is the identity of ctx as a log attribute ("caller"), or an
// anonymous one when authentication is off.
func LogAttr(ctx context.Context) slog.Attr {
	if id, ok := FromContext(ctx); ok {
		return slog.String("caller", id.Name+" ("+string(id.Role)+", "+id.Via+")")
	}
	return slog.String("caller", "anonymous (authentication off)")
}

package participant

import (
	"net/http"

	"github.com/settle-tcc/settle/internal/httpparticipant"
)

// HTTPHandler serves the participant over HTTP, for initiators and a
// coordinator that reach it by an http:// or https:// base URL
// (docs/participant-protocol.md, "Participants over HTTP"): POST
// <base>/try, <base>/confirm and <base>/cancel with the protobuf JSON
// request as the body. Mount it under the base URL's path, e.g.
//
//	mux.Handle("/tcc/", p.HTTPHandler()) // base URL http://host:port/tcc
//
// Answers: 200 done; 409 a refusal (Refusal, anti-hanging, a conflict, a
// different payload); 400 an invalid request or payload (CheckRequest);
// 503 any other failure, which the caller retries.
func (p *Participant) HTTPHandler() http.Handler {
	return httpparticipant.Handler(p)
}

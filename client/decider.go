package client

import (
	"context"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/httpparticipant"
	"github.com/settle-tcc/settle/internal/tcc"
)

// Decider answers the coordinator's question "what is the outcome of gid?"
// for an initiator that commits through Txn.CommitLocal, from the decision
// table in the initiator's database: it inserts (gid, abort) if no row
// exists and answers what the row says. The insert is an insert-if-absent
// on the primary key (INSERT IGNORE on MySQL, ON CONFLICT DO NOTHING on
// SQLite and PostgreSQL), so a local transaction of CommitLocal that is
// still running, and holds the key, makes it wait until that transaction
// ends: if it committed, the answer is commit; if not, the abort row is
// inserted and the later commit of the same gid fails on the key. Either
// way the answer is final.
//
// Serve it over gRPC (tccv1.RegisterDeciderServiceServer(s, d)) or HTTP
// (mux.Handle("/settle/", d) for the decider target
// http://host:port/settle, which the coordinator calls as POST
// /settle/decide), and name that target at Begin (WithDecider or
// BeginOptions.Decider). The table must exist (EnsureDecisionTable).
//
// Serve it only to the coordinator (mutual TLS, a network policy): a
// question is a write, so whoever can ask can abort a transaction whose
// local commit has not happened yet.
type Decider struct {
	tccv1.UnimplementedDeciderServiceServer
	db   *gorm.DB
	http http.Handler
}

var _ tccv1.DeciderServiceServer = (*Decider)(nil)

// NewDecider returns a Decider over db, the initiator's database holding
// the decision table.
func NewDecider(db *gorm.DB) *Decider {
	d := &Decider{db: db}
	d.http = httpparticipant.DeciderHandler(d)
	return d
}

// Decide implements tccv1.DeciderServiceServer. A malformed gid is
// INVALID_ARGUMENT; a database failure UNAVAILABLE (the coordinator asks
// again later).
func (d *Decider) Decide(ctx context.Context, req *tccv1.DecideRequest) (*tccv1.DecideResponse, error) {
	if err := tcc.ValidateGID(req.GetGid()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	o, err := decideLocally(ctx, d.db, req.GetGid())
	if err != nil {
		// No SQL text in the answer: it reaches the coordinator's logs and
		// history.
		return nil, status.Error(codes.Unavailable, "decider: the decision table could not be read or written")
	}
	if o == OutcomeCommit {
		return &tccv1.DecideResponse{Outcome: tccv1.Outcome_OUTCOME_COMMIT}, nil
	}
	return &tccv1.DecideResponse{Outcome: tccv1.Outcome_OUTCOME_ABORT}, nil
}

// ServeHTTP serves the decider's HTTP contract: POST <base>/decide with
// {"gid": "..."}, answered 200 {"outcome": "COMMIT"} or {"outcome":
// "ABORT"}; 400 for a malformed request or gid, 503 when the database
// fails, 405 for another method, 404 for another path.
func (d *Decider) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.http.ServeHTTP(w, r) }

package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Times are passed explicitly: live rows expire a day after the test
// starts, expired ones ended an hour before it (readers use the database's
// clock, which is the test's).

func liveUntil() time.Time { return time.Now().Add(24 * time.Hour).Truncate(time.Millisecond).UTC() }

func expiredAt() time.Time { return time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC() }

// testResponse is a live response of account with payloads naming id.
func testResponse(id, account, previous string) StoredResponse {
	return StoredResponse{
		ID:         id,
		AccountID:  account,
		KeyID:      "key_" + account,
		PreviousID: previous,
		Model:      "gpt-test",
		Status:     "completed",
		Input:      []byte(`[{"id":"msg_in_` + id + `","type":"message","role":"user","content":"hi"}]`),
		Output:     []byte(`[{"id":"msg_out_` + id + `","type":"message","role":"assistant","content":[{"type":"output_text","text":"hello"}]}]`),
		Response:   []byte(`{"id":"` + id + `","object":"response","status":"completed"}`),
		CreatedAt:  time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC(),
		ExpiresAt:  liveUntil(),
	}
}

func saveResponses(t *testing.T, db *DB, rs ...StoredResponse) {
	t.Helper()
	for _, r := range rs {
		if err := db.SaveResponse(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func sameResponse(a, b StoredResponse) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.KeyID == b.KeyID && a.PreviousID == b.PreviousID &&
		a.Model == b.Model && a.Status == b.Status && bytes.Equal(a.Input, b.Input) && bytes.Equal(a.Output, b.Output) &&
		bytes.Equal(a.Response, b.Response) && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func chainIDs(rs []StoredResponse) string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return strings.Join(ids, ",")
}

func countResponses(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	if err := db.queryRow(context.Background(), `SELECT COUNT(*) FROM responses`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestResponseRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		big := `"` + strings.Repeat("x", 1<<20) + `"`
		for _, c := range []struct {
			name string
			edit func(r *StoredResponse)
		}{
			{"all fields", func(*StoredResponse) {}},
			{"no previous", func(r *StoredResponse) { r.PreviousID, r.KeyID = "", "" }},
			{"1 MB payloads", func(r *StoredResponse) {
				r.Input = []byte(`[{"id":"i1","content":` + big + `}]`)
				r.Output = []byte(`[{"id":"o1","content":` + big + `}]`)
				r.Response = []byte(`{"output":[{"id":"o1","content":` + big + `}]}`)
			}},
			{"escapes and non-ASCII", func(r *StoredResponse) {
				r.Input = []byte(`[{"id":"i1","text":"nul \u0000 end, tab \t, quote \", emoji 🦀, 日本語, café"}]`)
				r.Output = []byte("[{\"id\":\"o1\",\"text\":\"\\u0000\\u001f \u00e9 \U0001F600 \u202e\"}]")
				r.Response = []byte(`{"text":"Grüße \ud83d\ude00 \u0000"}`)
			}},
			{"whitespace around values", func(r *StoredResponse) {
				r.Input = []byte(" \n[ ]\n")
				r.Response = []byte("\t{ }")
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				want := testResponse("resp_"+strings.ReplaceAll(c.name, " ", "_"), "acct_a", "resp_parent")
				c.edit(&want)
				saveResponses(t, db, want)
				got, err := db.GetResponse(ctx, "acct_a", want.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !sameResponse(got, want) {
					t.Fatalf("got %+v\nwant %+v", got, want)
				}
				if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
					t.Fatalf("times not in UTC: %v, %v", got.CreatedAt, got.ExpiresAt)
				}
			})
		}
	})
}

func TestSaveResponseDefaultsEmptyItems(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		r := testResponse("resp_empty", "acct_a", "")
		r.Input, r.Output = nil, []byte{}
		saveResponses(t, db, r)
		got, err := db.GetResponse(context.Background(), "acct_a", r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Input) != "[]" || string(got.Output) != "[]" {
			t.Fatalf("input %q, output %q; want []", got.Input, got.Output)
		}
	})
}

func TestSaveResponseRejectsBadInput(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		for _, c := range []struct {
			name string
			edit func(r *StoredResponse)
		}{
			{"no id", func(r *StoredResponse) { r.ID = "" }},
			{"no account", func(r *StoredResponse) { r.AccountID = "" }},
			{"no retention end", func(r *StoredResponse) { r.ExpiresAt = time.Time{} }},
			{"invalid JSON", func(r *StoredResponse) { r.Input = []byte(`[{"id":`) }},
			{"invalid UTF-8", func(r *StoredResponse) { r.Output = []byte("[\"\xff\xfe\"]") }},
			{"raw NUL", func(r *StoredResponse) { r.Response = []byte("{\"a\":\"\x00\"}") }},
			{"input not an array", func(r *StoredResponse) { r.Input = []byte(`{"id":"x"}`) }},
			{"output not an array", func(r *StoredResponse) { r.Output = []byte(`"x"`) }},
			{"response not an object", func(r *StoredResponse) { r.Response = []byte(`[]`) }},
			{"no response", func(r *StoredResponse) { r.Response = nil }},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := testResponse("resp_bad", "acct_a", "")
				c.edit(&r)
				err := db.SaveResponse(context.Background(), r)
				if err == nil || errors.Is(err, ErrConflict) {
					t.Fatalf("save: %v; want a validation error", err)
				}
			})
		}
		if n := countResponses(t, db); n != 0 {
			t.Fatalf("%d rows stored", n)
		}
	})
}

func TestSaveResponseConflict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		first := testResponse("resp_1", "acct_a", "")
		saveResponses(t, db, first)
		for _, account := range []string{"acct_a", "acct_b"} {
			dup := testResponse("resp_1", account, "")
			dup.Status = "failed"
			if err := db.SaveResponse(ctx, dup); !errors.Is(err, ErrConflict) {
				t.Fatalf("duplicate id from %s: %v; want ErrConflict", account, err)
			}
		}
		if got, err := db.GetResponse(ctx, "acct_a", "resp_1"); err != nil || !sameResponse(got, first) {
			t.Fatalf("after conflicts: %+v, %v", got, err)
		}
	})
}

// TestResponseNotFound: absent, expired and another account's rows answer
// the same ErrNotFound on every read, and are left as they were.
func TestResponseNotFound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		expired := testResponse("resp_expired", "acct_a", "")
		expired.ExpiresAt = expiredAt()
		saveResponses(t, db, testResponse("resp_a", "acct_a", ""), expired)
		ops := []struct {
			name string
			do   func(account, id string) error
		}{
			{"get", func(account, id string) error { _, err := db.GetResponse(ctx, account, id); return err }},
			{"chain", func(account, id string) error { _, err := db.ResponseChain(ctx, account, id, 10); return err }},
			{"delete", func(account, id string) error { return db.DeleteResponse(ctx, account, id) }},
		}
		for _, c := range []struct{ name, account, id string }{
			{"absent", "acct_a", "resp_none"},
			{"another account's", "acct_b", "resp_a"},
			{"no account", "", "resp_a"},
			{"expired", "acct_a", "resp_expired"},
		} {
			for _, op := range ops {
				t.Run(c.name+"/"+op.name, func(t *testing.T) {
					if err := op.do(c.account, c.id); !errors.Is(err, ErrNotFound) {
						t.Fatalf("%s(%s, %s): %v; want ErrNotFound", op.name, c.account, c.id, err)
					}
				})
			}
		}
		if _, err := db.GetResponse(ctx, "acct_a", "resp_a"); err != nil {
			t.Fatalf("owner's read after another account's delete: %v", err)
		}
		if n := countResponses(t, db); n != 2 {
			t.Fatalf("%d rows; the expired one waits for the sweep, want 2", n)
		}
	})
}

func TestDeleteResponse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		saveResponses(t, db, testResponse("resp_1", "acct_a", ""), testResponse("resp_2", "acct_a", "resp_1"))
		if err := db.DeleteResponse(ctx, "acct_a", "resp_1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetResponse(ctx, "acct_a", "resp_1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := db.DeleteResponse(ctx, "acct_a", "resp_1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := db.GetResponse(ctx, "acct_a", "resp_2"); err != nil {
			t.Fatalf("a later turn after its parent's delete: %v", err)
		}
		// The id stays taken only while the row exists.
		saveResponses(t, db, testResponse("resp_1", "acct_a", ""))
	})
}

func TestResponseChain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		// r1 <- r2 <- r3 <- r4 <- r5, and other conversations beside it.
		for i := 1; i <= 5; i++ {
			prev := ""
			if i > 1 {
				prev = fmt.Sprintf("r%d", i-1)
			}
			saveResponses(t, db, testResponse(fmt.Sprintf("r%d", i), "acct_a", prev))
		}
		expired := testResponse("x1", "acct_a", "")
		expired.ExpiresAt = expiredAt()
		saveResponses(t, db,
			expired, testResponse("x2", "acct_a", "x1"),
			testResponse("b1", "acct_b", ""), testResponse("a2", "acct_a", "b1"),
			testResponse("m2", "acct_a", "gone"),
			testResponse("d1", "acct_a", ""), testResponse("d2", "acct_a", "d1"), testResponse("d3", "acct_a", "d2"), testResponse("d4", "acct_a", "d3"),
		)
		if err := db.DeleteResponse(ctx, "acct_a", "d2"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name     string
			id       string
			maxDepth int
			want     string
		}{
			{"whole chain", "r5", 10, "r1,r2,r3,r4,r5"},
			{"exactly its length", "r5", 5, "r1,r2,r3,r4,r5"},
			{"newest 3 of 5", "r5", 3, "r3,r4,r5"},
			{"depth 1", "r5", 1, "r5"},
			{"from the middle", "r3", 10, "r1,r2,r3"},
			{"first turn", "r1", 10, "r1"},
			{"deleted middle ancestor", "d4", 10, "d3,d4"},
			{"expired ancestor", "x2", 10, "x2"},
			{"another account's ancestor", "a2", 10, "a2"},
			{"missing ancestor", "m2", 10, "m2"},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := db.ResponseChain(ctx, "acct_a", c.id, c.maxDepth)
				if err != nil {
					t.Fatal(err)
				}
				if ids := chainIDs(got); ids != c.want {
					t.Fatalf("chain %s", ids)
				}
				for _, r := range got {
					if want := testResponse(r.ID, "acct_a", r.PreviousID); !bytes.Equal(r.Input, want.Input) || !bytes.Equal(r.Response, want.Response) {
						t.Fatalf("%s: payloads %s, %s", r.ID, r.Input, r.Response)
					}
				}
			})
		}
		if _, err := db.ResponseChain(ctx, "acct_a", "r5", 0); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("maxDepth 0: %v; want an argument error", err)
		}
	})
}

// TestResponseChainCycle: a cycle, which callers never create but an edit
// of the database could, ends the walk; each turn comes back once.
func TestResponseChainCycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		saveResponses(t, db, testResponse("c1", "acct_a", ""), testResponse("c2", "acct_a", "c1"),
			testResponse("c3", "acct_a", "c2"), testResponse("c4", "acct_a", "c3"),
			testResponse("s1", "acct_a", "s1"))
		// c2's parent becomes its descendant c3: c4 -> c3 -> c2 -> c3 -> ...
		if _, err := db.exec(ctx, `UPDATE responses SET previous_id = ? WHERE id = ?`, "c3", "c2"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name     string
			id       string
			maxDepth int
			want     string
		}{
			{"cycle", "c4", 1000, "c2,c3,c4"},
			{"cycle, cut by depth", "c4", 2, "c3,c4"},
			{"inside the cycle", "c2", 1000, "c3,c2"},
			{"self-loop", "s1", 1000, "s1"},
		} {
			t.Run(c.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				got, err := db.ResponseChain(ctx, "acct_a", c.id, c.maxDepth)
				if err != nil {
					t.Fatal(err)
				}
				if ids := chainIDs(got); ids != c.want {
					t.Fatalf("chain %s, want %s", ids, c.want)
				}
			})
		}
	})
}

func TestSweepResponses(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now()
		for i := range 23 {
			r := testResponse(fmt.Sprintf("old_%02d", i), "acct_a", "")
			r.ExpiresAt = now.Add(-time.Duration(i+1) * time.Minute)
			saveResponses(t, db, r)
		}
		for i := range 5 {
			saveResponses(t, db, testResponse(fmt.Sprintf("live_%d", i), "acct_a", ""))
		}
		edge := testResponse("edge", "acct_a", "")
		edge.ExpiresAt = now.Truncate(time.Millisecond) // ends at now, not before it
		saveResponses(t, db, edge)

		n, err := db.SweepResponses(ctx, now.Truncate(time.Millisecond), 4)
		if err != nil || n != 23 {
			t.Fatalf("swept %d, %v; want 23", n, err)
		}
		if n := countResponses(t, db); n != 6 {
			t.Fatalf("%d rows left, want 6 (5 live and the one ending at now)", n)
		}
		for i := range 5 {
			if _, err := db.GetResponse(ctx, "acct_a", fmt.Sprintf("live_%d", i)); err != nil {
				t.Fatalf("live row after the sweep: %v", err)
			}
		}
		if n, err := db.SweepResponses(ctx, now, 4); err != nil || n != 0 {
			t.Fatalf("second sweep: %d, %v", n, err)
		}
		if _, err := db.SweepResponses(ctx, now, 0); err == nil {
			t.Fatal("batch 0 accepted")
		}
	})
}

// TestSweepResponsesConcurrent: replicas sweeping at once delete every
// expired row once between them, and no live row.
func TestSweepResponsesConcurrent(t *testing.T) {
	forEachBackendDSN(t, func(t *testing.T, db *DB, dsn string) {
		ctx := context.Background()
		now := time.Now()
		const expired, live = 300, 20
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			for i := range expired + live {
				exp := now.Add(-time.Hour).UnixMilli()
				if i >= expired {
					exp = liveUntil().UnixMilli()
				}
				if _, err := db.txExec(ctx, tx, `INSERT INTO responses (`+responseColumns+`) VALUES (?, 'acct_a', '', '', '', '', '[]', '[]', '{}', 0, ?)`,
					fmt.Sprintf("resp_%04d", i), exp); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		replicas := []*DB{db, openAgain(t, dsn), openAgain(t, dsn)}
		counts := make([]int, len(replicas))
		errs := make([]error, len(replicas))
		var wg sync.WaitGroup
		for i, r := range replicas {
			wg.Go(func() { counts[i], errs[i] = r.SweepResponses(ctx, now, 7) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// A sweeper may stop early on a short batch while another holds
		// rows; one more sweep finds whatever is left.
		rest, err := db.SweepResponses(ctx, now, 7)
		if err != nil {
			t.Fatal(err)
		}
		total := rest
		for _, n := range counts {
			total += n
		}
		if total != expired {
			t.Fatalf("swept %v + %d = %d, want %d", counts, rest, total, expired)
		}
		if n := countResponses(t, db); n != live {
			t.Fatalf("%d rows left, want %d", n, live)
		}
	})
}

package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/pkg/cluster/auth"
	"github.com/berth-dev/berth/pkg/cluster/awsproto"
)

// call runs one ECS API operation as the session's key, through the same
// handler as a signed request: the same role checks, validation and
// errors. A refusal comes back as a flash naming the API's error;
// anything else is an internal error (nil flash and a non-nil error).
func (s *Server) call(r *http.Request, op string, input any) (*flash, error) {
	out, err := s.callOut(r, s.o.ECS, op, input)
	return out.flash, err
}

// callResult is an operation's answer: its JSON output, or the refusal.
type callResult struct {
	body  []byte
	flash *flash
}

// callOut is call on the API handler h that also returns the
// operation's output.
func (s *Server) callOut(r *http.Request, h awsproto.Handler, op string, input any) (callResult, error) {
	sess := sessionOf(r)
	body, err := json.Marshal(input)
	if err != nil {
		return callResult{}, fmt.Errorf("%s: encode input: %w", op, err)
	}
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	out, err := h.ServeAWS(&awsproto.Request{Context: r.Context(), Key: sess.Key, Operation: op, Protocol: awsproto.JSON11,
		Body: body, BaseURL: scheme + r.Host})
	var ae *awsproto.Error
	var authE *auth.Error
	switch {
	case err == nil:
		return callResult{body: out}, nil
	case errors.As(err, &ae):
		return callResult{flash: &flash{Error: true, Message: ae.Type + ": " + ae.Message}}, nil
	case errors.As(err, &authE):
		return callResult{flash: &flash{Error: true, Message: authE.Type + ": " + authE.Message}}, nil
	}
	return callResult{}, fmt.Errorf("%s: %w", op, err)
}

// answerAction tells the browser how an action went: htmx gets the flash
// fragment (and an event that refreshes the live parts at once); a plain
// form post goes back to the page (back) when the action was taken, or
// gets the refusal with a link back.
func (s *Server) answerAction(w http.ResponseWriter, r *http.Request, fl *flash, back string) {
	switch {
	case isHTMX(r):
		w.Header().Set("HX-Trigger", "berth-refresh")
		// htmx swaps only 2xx answers by default: the refusal is shown as
		// a 200 fragment and told apart by its class.
		s.render(w, http.StatusOK, fragmentPage, "flash", &page{Flash: fl})
	case fl.Error:
		s.render(w, http.StatusBadRequest, "message", "layout.html", &page{Title: "Refused", Session: sessionOf(r), Flash: fl, Data: back})
	default:
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

func (s *Server) setDesiredCount(w http.ResponseWriter, r *http.Request) {
	cluster, service := r.PathValue("cluster"), r.PathValue("service")
	raw := strings.TrimSpace(r.PostFormValue("desiredCount"))
	n, err := strconv.ParseInt(raw, 10, 32)
	var fl *flash
	if err != nil {
		fl = &flash{Error: true, Message: fmt.Sprintf("InvalidParameterException: desiredCount %q is not a whole number", raw)}
	} else {
		fl, err = s.call(r, "UpdateService", map[string]any{"cluster": cluster, "service": service, "desiredCount": n})
		if err != nil {
			s.internalError(w, err)
			return
		}
		if fl == nil {
			fl = &flash{Message: fmt.Sprintf("Desired count of %s set to %d.", service, n)}
		}
	}
	s.answerAction(w, r, fl, Prefix+"clusters/"+cluster+"/services/"+service)
}

// updateRevision updates the service to the form's task definition
// revision (UpdateService taskDefinition): a new deployment.
func (s *Server) updateRevision(w http.ResponseWriter, r *http.Request) {
	cluster, service, td := r.PathValue("cluster"), r.PathValue("service"), strings.TrimSpace(r.PostFormValue("taskDefinition"))
	fl, err := s.call(r, "UpdateService", map[string]any{"cluster": cluster, "service": service, "taskDefinition": td})
	if err != nil {
		s.internalError(w, err)
		return
	}
	if fl == nil {
		fl = &flash{Message: fmt.Sprintf("Service %s is being updated to %s.", service, td)}
	}
	s.answerAction(w, r, fl, Prefix+"clusters/"+cluster+"/services/"+service)
}

// stopTask stops the task named by the form's task field (the button
// pressed: a service's task list has one form, outside the part that
// polling replaces, and a button per task).
func (s *Server) stopTask(w http.ResponseWriter, r *http.Request) {
	cluster, task := r.PathValue("cluster"), r.PostFormValue("task")
	reason := "Stopped from the console by " + sessionOf(r).Key.AccessKeyID
	fl, err := s.call(r, "StopTask", map[string]any{"cluster": cluster, "task": task, "reason": reason})
	if err != nil {
		s.internalError(w, err)
		return
	}
	if fl == nil {
		fl = &flash{Message: "Task " + task + " is stopping."}
	}
	s.answerAction(w, r, fl, Prefix+"clusters/"+cluster+"/tasks/"+task)
}

// forceDeployment starts a new deployment of the service's task
// definition (UpdateService forceNewDeployment), replacing its tasks.
func (s *Server) forceDeployment(w http.ResponseWriter, r *http.Request) {
	cluster, service := r.PathValue("cluster"), r.PathValue("service")
	fl, err := s.call(r, "UpdateService", map[string]any{"cluster": cluster, "service": service, "forceNewDeployment": true})
	if err != nil {
		s.internalError(w, err)
		return
	}
	if fl == nil {
		fl = &flash{Message: "A new deployment of " + service + " started."}
	}
	s.answerAction(w, r, fl, Prefix+"clusters/"+cluster+"/services/"+service)
}

// setInstanceState drains a container instance or makes it ACTIVE again
// (UpdateContainerInstancesState): the form's instance and status. It
// goes back to the cluster's page, or to the instance's (from=instance).
func (s *Server) setInstanceState(w http.ResponseWriter, r *http.Request) {
	cluster, instance, status := r.PathValue("cluster"), r.PostFormValue("instance"), r.PostFormValue("status")
	fl, err := s.call(r, "UpdateContainerInstancesState", map[string]any{"cluster": cluster, "containerInstances": []string{instance},
		"status": status})
	if err != nil {
		s.internalError(w, err)
		return
	}
	if fl == nil {
		fl = &flash{Message: fmt.Sprintf("Instance %s is %s.", instance, status)}
	}
	back := Prefix + "clusters/" + cluster
	if r.PostFormValue("from") == "instance" {
		back += "/instances/" + url.PathEscape(instance)
	}
	s.answerAction(w, r, fl, back)
}

package agent_test

// childEnv names the variable that turns the test binary into a child agent.
const childEnv = "BERTH_TEST_AGENT_CHILD"

func runChild(spec string) int { return 2 }

"""Second-step factors. Each module checks one factor and reports it to accounts.signin
(`signin.complete_factor`); none decides routing. `second_step` holds the throttle that
every second-step factor shares."""

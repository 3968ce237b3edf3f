"""What the demo, the tests and the benchmarks run against: an embedded SeaweedFS S3 server and a
local Airflow. Not part of the engine: nothing in the engine or the provider imports it."""

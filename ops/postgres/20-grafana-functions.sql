-- What Grafana's goals dashboard reads from the read models (ops/grafana/dashboards/goals.json),
-- as counts over all tenants. Run once by the postgres image when it creates the database,
-- after 10-grafana-reader.sh; the read models' tables come later (the projector creates them),
-- and PL/pgSQL bodies are only checked when called. The functions run with their owner's rights,
-- so grafana_reader needs no right on any table.
CREATE SCHEMA IF NOT EXISTS grafana;

-- Active goals by overall progress, in the bands of the default milestones.
CREATE OR REPLACE FUNCTION grafana.progress_distribution()
RETURNS TABLE (band TEXT, goals BIGINT)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY
  SELECT b.band, COUNT(g.overall_progress)
  FROM (VALUES (1, '0-24', 0.0, 25.0), (2, '25-49', 25.0, 50.0), (3, '50-74', 50.0, 75.0),
               (4, '75-89', 75.0, 90.0), (5, '90-99', 90.0, 100.0), (6, '100', 100.0, 1e9))
       AS b(n, band, low, high)
  LEFT JOIN goal_progress g
    ON g.status = 'active' AND g.overall_progress >= b.low AND g.overall_progress < b.high
  GROUP BY b.n, b.band ORDER BY b.n;
END $$;

-- Goals by status (active, paused, completed, cancelled).
CREATE OR REPLACE FUNCTION grafana.goals_by_status()
RETURNS TABLE (status TEXT, goals BIGINT)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY SELECT g.status, COUNT(*) FROM goal_progress g GROUP BY g.status ORDER BY g.status;
END $$;

-- Events of one type per hour between two instants, from the hourly rollup of the facts
-- (MilestoneReached, ProgressRecorded, GoalStagnant, ...).
CREATE OR REPLACE FUNCTION grafana.events_per_hour(event_type TEXT, since TIMESTAMPTZ, until TIMESTAMPTZ)
RETURNS TABLE ("time" TIMESTAMPTZ, events BIGINT)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY
  SELECT h.hour, SUM(h.events)::BIGINT FROM event_facts_hourly h
  WHERE h.type = event_type AND h.hour >= since AND h.hour < until
  GROUP BY h.hour ORDER BY h.hour;
END $$;

REVOKE ALL ON SCHEMA grafana FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA grafana FROM PUBLIC;
GRANT USAGE ON SCHEMA grafana TO grafana_reader;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA grafana TO grafana_reader;

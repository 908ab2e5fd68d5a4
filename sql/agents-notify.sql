-- Optional: tell mychips-noise at once when a row of mychips.agents changes.
--
-- MyCHIPs notifies after changes to tallies and users, but not to agents. The
-- peer store therefore keeps an agent's key for at most database.cacheTtl
-- (default 60 s). With this trigger installed it drops its cached keys on
-- every change to mychips.agents instead. Install it once per database, as a
-- role that may create triggers on mychips.agents:
--
--   psql "$DATABASE_URL" -f sql/agents-notify.sql
--
-- It sends on the channel mychips_agents (database.agentsChannel), so MyCHIPs'
-- own listeners on mychips_admin see nothing new. It changes no data. Remove
-- it with:
--
--   drop trigger mychips_noise_agents_tr_notify on mychips.agents;
--   drop function mychips.noise_agents_tf_notify();

create or replace function mychips.noise_agents_tf_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('mychips_agents', format('{"target":"agents", "oper":"%s"}', tg_op));
  return null;
end $$;

drop trigger if exists mychips_noise_agents_tr_notify on mychips.agents;
create trigger mychips_noise_agents_tr_notify after insert or update or delete on mychips.agents
  for each statement execute function mychips.noise_agents_tf_notify();

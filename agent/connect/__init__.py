"""The service mesh's control-plane logic, pure: config entries, the discovery chain, the
Connect CA and intentions. No I/O and no clock: the state store, the FSM and the HTTP areas
call in with the records and the time; nothing here imports them."""

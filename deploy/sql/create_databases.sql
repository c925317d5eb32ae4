-- One database per service: no service reads another service's database.
CREATE DATABASE projections OWNER oppstream;
CREATE DATABASE reminders OWNER oppstream;

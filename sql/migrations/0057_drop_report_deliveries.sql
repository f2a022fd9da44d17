-- Report emails are outbox rows now (0055, 0056): their own delivery table has no reader left.
DROP TABLE report_deliveries;

-- A device shown degraded before answer quality had its own hysteresis keeps that quality.

UPDATE devices SET quality = 'degraded' WHERE oper_status = 'degraded';

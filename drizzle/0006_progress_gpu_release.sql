ALTER TABLE "executions" ADD COLUMN "progress" jsonb;--> statement-breakpoint
ALTER TABLE "executions" ADD COLUMN "gpu_released_at" timestamp (3) with time zone;
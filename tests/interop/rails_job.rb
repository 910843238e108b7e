# A background job in the style of Rails' ActiveJob that hands an upload to
# cru through the Redis contract alone (README "Using cru from your app"):
# one FCALL to enqueue, then it follows the job on the cru:events stream
# (blocking XREAD) and reads the job hash. In a Rails app the class would be
# `class UploadJob < ApplicationJob`; here it is plain Ruby so it runs with
# Debian 12's ruby and ruby-redis (redis-rb 4.x) only.
#
# Environment (tests/integration/interop.sh sets it):
#   CRU_REDIS_URL    the Redis the workers use
#   CRU_SOURCE_ROOT  the workers' source root (the app's upload directory)
#   UPLOAD_PATH      the file to upload, relative to CRU_SOURCE_ROOT
#   UPLOAD_URL       a fresh Graph upload session for it
#   JOB_TIMEOUT      seconds to wait for the job (default 120)
#
# Prints "PASS name" / "FAIL name: why" lines on stdout; exits 1 on failure.
require "json"
require "redis"

class UploadJob # < ApplicationJob
  TERMINAL = %w[done failed cancelled].freeze

  attr_reader :job_id, :events

  def initialize(redis: Redis.new(url: ENV.fetch("CRU_REDIS_URL", "redis://localhost:6379/0")),
                 upload_dir: ENV.fetch("CRU_SOURCE_ROOT", "/srv/uploads"),
                 timeout: Float(ENV.fetch("JOB_TIMEOUT", "120")))
    @redis = redis
    @upload_dir = upload_dir
    @timeout = timeout
    @events = []
  end

  # Enqueues the upload, follows it to its end, returns the job hash.
  def perform(path, upload_url)
    after = last_event_id
    spec = { source: File.join(@upload_dir, path),
             target: { type: "graph", upload_url: upload_url },
             chunk_size: 2 * 327_680,
             meta: { app: "rails", path: path } }
    @job_id = @redis.call("FCALL", "cru_submit", 0, spec.to_json)
    wait_until_finished(after)
    @redis.hgetall("cru:job:#{@job_id}")
  end

  private

  def last_event_id
    last = @redis.xrevrange("cru:events", "+", "-", count: 1)
    last.empty? ? "0-0" : last.first.first
  end

  # Blocks on cru:events (XREAD BLOCK) until this job's final state.
  def wait_until_finished(after)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @timeout
    loop do
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      return nil if left <= 0

      reply = @redis.xread("cru:events", after, count: 100, block: [(left * 1000).to_i, 5000].min.clamp(1, 5000))
      (reply["cru:events"] || []).each do |id, fields|
        after = id
        next unless fields["job"] == @job_id

        @events << fields
        return fields["state"] if TERMINAL.include?(fields["state"])
      end
    end
  end
end

$failures = 0
def check(name, ok, why = "failed")
  if ok
    puts "PASS rails: #{name}"
  else
    $failures += 1
    puts "FAIL rails: #{name}: #{why}"
  end
  $stdout.flush
  ok
end

begin
  path = ENV.fetch("UPLOAD_PATH")
  size = File.size(File.join(ENV.fetch("CRU_SOURCE_ROOT"), path))
  job = UploadJob.new
  h = job.perform(path, ENV.fetch("UPLOAD_URL"))
  warn "rails: job #{job.job_id}"
  last = job.events.last || {}
  check("the job's events end in done", last["state"] == "done",
        "final event #{last.inspect} after #{job.events.size} events")
  progress = job.events.select { |e| e.key?("chunk") }.map { |e| e["bytes_done"].to_i }
  check("one progress event per chunk, bytes_done rising to size",
        progress.size == h["chunks"].to_i && progress == progress.sort && progress.last == size,
        "chunks=#{h['chunks']} progress=#{progress.inspect}")
  check("HGETALL cru:job:<id>: state done", h["state"] == "done", "state #{h['state'].inspect}, error #{h['error'].inspect}")
  check("HGETALL cru:job:<id>: bytes_done == size == file size",
        h["bytes_done"].to_i == size && h["size"].to_i == size, "bytes_done #{h['bytes_done']} size #{h['size']} file #{size}")
  check("HGETALL cru:job:<id>: chunks_done == chunks", h["chunks_done"] == h["chunks"] && h["chunks"].to_i > 1,
        "#{h['chunks_done']} of #{h['chunks']}")
  result = JSON.parse(h["result"] || "{}")
  check("result.size and meta echoed", result["size"] == size && JSON.parse(h["meta"] || "{}")["app"] == "rails",
        "result #{h['result']} meta #{h['meta']}")
  check("events carry no spec or session (secrets)",
        job.events.none? { |e| e.key?("spec") || e.key?("session") }, "an event carried them")
  begin
    Redis.new(url: ENV.fetch("CRU_REDIS_URL")).call("FCALL", "cru_submit", 0, { source: "x" }.to_json)
    check("a refused spec raises Redis::CommandError", false, "no error")
  rescue Redis::CommandError => e
    check("a refused spec raises Redis::CommandError", e.message.include?("invalid spec"), e.message)
  end
rescue StandardError => e
  check("job ran", false, "#{e.class}: #{e.message}")
end
exit($failures.zero? ? 0 : 1)

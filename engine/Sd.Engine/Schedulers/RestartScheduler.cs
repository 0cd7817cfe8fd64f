using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// Restart (A1111's "Restart"; Xu et al., "Restart Sampling for Improving Generative Processes", 2023): Heun steps, a
/// step to 0 Euler, on a schedule that goes back up once or twice. From 20 steps on, the levels become a Karras ramp
/// of fewer steps between the schedule's ends (k-diffusion's float32 get_sigmas_karras), and after the step that
/// reaches the level nearest 0.1 the sample is noised back up to the level nearest 2 and walked down to where it was
/// along a second Karras ramp: once over 9 steps (20 to 35 steps), or twice over steps / 4 (36 and more). The steps add
/// up to the steps asked for, so n steps take 2n - 1 model calls, as Heun's (but for the odd plans below). Below 20
/// steps it is Heun on the levels.
/// Two plans of A1111's differ: where the schedule's lowest level is above 0.2, the level nearest 0.1 is the final 0,
/// and each restart starts from the finished sample and ends at 0 again (a one-call step to 0 more per restart: 2n - 2
/// calls, 2n - 3 from 36 steps); where no level nearer 2 lies above the one nearest 0.1, nothing restarts and only the
/// main ramp's steps run (n - 9, or n - 2 (n / 4) from 36 steps).
/// Each restart adds noise of scale sqrt(to^2 - from^2), from the level the sample is at to the one it restarts from,
/// drawn after the call that ends there (draw index = that call's step index), as A1111 draws it before the next step.
/// A run that starts part-way (img2img, inpainting) is planned anew over the steps it runs, as A1111 plans its img2img
/// over the levels left: skipping k of n steps restarts only when n - k is 20 or more.
/// Levels as Euler's (the config's spacing, or a ramp, whose ends the restart ramps span); every call's timestep is
/// its level's training time as A1111's model wrapper takes it (k-diffusion's float32 sigma_to_t); model inputs are
/// scaled and the data predicted as diffusers' Euler does.
/// Reference: A1111's restart_sampler (modules/sd_samplers_extra.py) with its automatic restart list.
/// </summary>
public sealed class RestartScheduler : HeunDiscreteScheduler
{
    /// <summary>The fewest steps A1111 restarts at.</summary>
    private const int FirstRestartingSteps = 20;

    /// <summary>The level a restart returns to (the one nearest it) and the level it restarts from.</summary>
    private const float RestartAt = 0.1f, RestartFrom = 2f;

    /// <summary>Per call: the level its step ends at (its own for a second call), and whether it is a second call.</summary>
    private float[] _ends = [];
    private bool[] _second = [];

    /// <summary>Per call: whether noise follows its step (a restart), and its scale (A1111 draws whenever the next step
    /// starts higher, whatever the scale).</summary>
    private bool[] _restartsAfter = [];
    private float[] _noiseAfter = [];

    public RestartScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "Restart", ZeroTerminalSnr.EndsAtFloor, float.PositiveInfinity)
    {
    }

    /// <summary>
    /// The steps as calls: a step from F to T is a first call at F and a second at T, or one Euler call at F when T is
    /// 0. The calls' levels (and a final 0) and training times; where the next step starts higher, the noise that lifts
    /// the sample there follows the step's last call.
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        // The skipped steps are never run; they keep their levels, level to level, so that the run's calls keep
        // their indices (step k's first call is call 2k: none of them ends at 0 before the last).
        int skipped = SkippedSteps;
        (float[] runFrom, float[] runTo) = Steps(sigmas[skipped..]);
        float[] from = [.. sigmas[..skipped], .. runFrom], to = [.. sigmas[1..(skipped + 1)], .. runTo];
        float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
        var levels = new List<float>(2 * from.Length);
        var ends = new List<float>(2 * from.Length);
        var second = new List<bool>(2 * from.Length);
        var restartsAfter = new List<bool>(2 * from.Length);
        var noiseAfter = new List<float>(2 * from.Length);
        for (int k = 0; k < from.Length; k++)
        {
            levels.Add(from[k]);
            ends.Add(to[k]);
            second.Add(false);
            if (to[k] != 0f)
            {
                restartsAfter.Add(false);
                noiseAfter.Add(0f);
                levels.Add(to[k]);
                ends.Add(to[k]);
                second.Add(true);
            }
            bool restarts = k + 1 < from.Length && from[k + 1] > to[k];
            restartsAfter.Add(restarts);
            // torch: (old_sigma ** 2 - last_sigma ** 2) ** 0.5 on float32 levels.
            noiseAfter.Add(restarts ? MathF.Sqrt(from[k + 1] * from[k + 1] - to[k] * to[k]) : 0f);
        }
        var times = new float[levels.Count];
        for (int i = 0; i < times.Length; i++)
        {
            times[i] = SigmaRamps.TrainingTime(levels[i], logSigmas);
        }
        (_ends, _second) = (ends.ToArray(), second.ToArray());
        (_restartsAfter, _noiseAfter) = (restartsAfter.ToArray(), noiseAfter.ToArray());
        return (times, [.. levels, 0f]);
    }

    /// <summary>
    /// A1111's step list for <paramref name="sigmas"/> (the levels a run takes and the final 0): below 20 steps, level to
    /// level; else the main Karras ramp with the restart segments inserted after its step to the level nearest 0.1,
    /// when a level nearer 2 lies above that one.
    /// </summary>
    private static (float[] From, float[] To) Steps(float[] sigmas)
    {
        int steps = sigmas.Length - 1;
        if (steps < FirstRestartingSteps) // none at all for a run that skips every step
        {
            return (sigmas[..^1], sigmas[1..]);
        }
        (int segmentSteps, int restarts) = steps >= 36 ? (steps / 4, 2) : (9, 1);
        float[] main = SigmaRamps.KDiffusionKarras(sigmas[^2], sigmas[0], steps - segmentSteps * restarts);
        int low = Nearest(main, RestartAt), high = Nearest(main, RestartFrom);
        // The segment's steps + 1 levels, its final 0 dropped: it ends at the level it restarted from.
        float[] segment = high < low ? SigmaRamps.KDiffusionKarras(main[low], main[high], segmentSteps + 1)[..^1] : [];
        var from = new List<float>(steps);
        var to = new List<float>(steps);
        for (int i = 0; i < main.Length - 1; i++)
        {
            from.Add(main[i]);
            to.Add(main[i + 1]);
            for (int r = 0; i + 1 == low && r < restarts && segment.Length > 0; r++)
            {
                for (int j = 0; j < segmentSteps; j++)
                {
                    from.Add(segment[j]);
                    to.Add(segment[j + 1]);
                }
            }
        }
        return (from.ToArray(), to.ToArray());
    }

    /// <summary>torch.argmin(abs(levels - value)) in float32: the first of the nearest levels.</summary>
    private static int Nearest(float[] levels, float value)
    {
        int best = 0;
        for (int i = 1; i < levels.Length; i++)
        {
            if (MathF.Abs(levels[i] - value) < MathF.Abs(levels[best] - value))
            {
                best = i;
            }
        }
        return best;
    }

    protected override bool IsSecondCall(int stepIndex) => _second[stepIndex];

    protected override float StepEnd(int stepIndex) => _ends[stepIndex];

    /// <summary>Heun's first call, or an Euler step to 0, which a restart may follow (from a finished sample).</summary>
    protected override void FirstCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        base.FirstCall(modelOutput, stepIndex, sample, noise);
        AddRestartNoise(stepIndex, sample, noise);
    }

    /// <summary>Heun's second call; then, where the next step restarts higher, the noise that lifts the sample there.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        base.SecondCall(modelOutput, stepIndex, sample, noise);
        AddRestartNoise(stepIndex, sample, noise);
    }

    private void AddRestartNoise(int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        if (_restartsAfter[stepIndex])
        {
            AddScaledNoise(sample, Draw(noise, stepIndex, sample.Length), _noiseAfter[stepIndex]);
        }
    }
}

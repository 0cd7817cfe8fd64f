namespace Sd.Loaders.Config;

/// <summary>
/// <c>scheduler/scheduler_config.json</c>. Keys whose default depends on the scheduler class (notably
/// <c>timestep_spacing</c>: leading for DDIM/PNDM/LCM, linspace for Euler/LMS/DPM) stay null here and are resolved
/// by the scheduler that is built from this config, as diffusers' <c>from_config</c> does.
/// </summary>
public sealed record SchedulerConfig
{
    public string ClassName { get; init; } = "PNDMScheduler";
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.0001;
    public double BetaEnd { get; init; } = 0.02;
    public string BetaSchedule { get; init; } = "linear";
    public float[]? TrainedBetas { get; init; }
    public int StepsOffset { get; init; }
    public bool? SetAlphaToOne { get; init; }
    public bool? SkipPrkSteps { get; init; }
    public bool? ClipSample { get; init; }
    public string PredictionType { get; init; } = "epsilon";
    public string? TimestepSpacing { get; init; }
    public bool? UseKarrasSigmas { get; init; }

    public static SchedulerConfig Load(string path) => From(JsonConfig.Load(path));

    public static SchedulerConfig From(JsonConfig json)
    {
        var d = new SchedulerConfig();
        var config = new SchedulerConfig
        {
            ClassName = json.GetString("_class_name", d.ClassName),
            NumTrainTimesteps = json.GetInt("num_train_timesteps", d.NumTrainTimesteps),
            BetaStart = json.GetDouble("beta_start", d.BetaStart),
            BetaEnd = json.GetDouble("beta_end", d.BetaEnd),
            BetaSchedule = json.GetString("beta_schedule", d.BetaSchedule),
            TrainedBetas = json.GetFloatsOrNull("trained_betas"),
            StepsOffset = json.GetInt("steps_offset", 0),
            SetAlphaToOne = json.Has("set_alpha_to_one") ? json.GetBool("set_alpha_to_one", false) : null,
            SkipPrkSteps = json.Has("skip_prk_steps") ? json.GetBool("skip_prk_steps", false) : null,
            ClipSample = json.Has("clip_sample") ? json.GetBool("clip_sample", false) : null,
            PredictionType = json.GetString("prediction_type", d.PredictionType),
            TimestepSpacing = json.GetStringOrNull("timestep_spacing"),
            UseKarrasSigmas = json.Has("use_karras_sigmas") ? json.GetBool("use_karras_sigmas", false) : null,
        };
        if (config.NumTrainTimesteps is <= 0 or > 100_000)
        {
            throw new InvalidFileException(json.Path, $"num_train_timesteps must be in 1..100000, found {config.NumTrainTimesteps}");
        }
        if (config.StepsOffset < 0 || config.StepsOffset >= config.NumTrainTimesteps)
        {
            throw new InvalidFileException(json.Path, $"steps_offset must be in 0..{config.NumTrainTimesteps - 1} (num_train_timesteps - 1), found {config.StepsOffset}");
        }
        if (config.TrainedBetas is { } betas)
        {
            if (betas.Length != config.NumTrainTimesteps)
            {
                throw new InvalidFileException(json.Path, $"trained_betas has {betas.Length} values, num_train_timesteps is {config.NumTrainTimesteps}");
            }
            for (int i = 0; i < betas.Length; i++)
            {
                CheckBeta(json, $"trained_betas[{i}]", betas[i]);
            }
            CheckFirstBeta(json, "trained_betas[0]", betas[0]);
        }
        else
        {
            // With trained_betas diffusers never reads beta_schedule.
            CheckOneOf(json, "beta_schedule", config.BetaSchedule, BetaSchedules);
            CheckBeta(json, "beta_start", config.BetaStart);
            CheckBeta(json, "beta_end", config.BetaEnd);
            if (config.BetaSchedule != "squaredcos_cap_v2") // the cosine schedule derives its own betas
            {
                CheckFirstBeta(json, "beta_start", config.BetaStart);
            }
        }
        CheckOneOf(json, "prediction_type", config.PredictionType, PredictionTypes);
        if (config.TimestepSpacing != null)
        {
            CheckOneOf(json, "timestep_spacing", config.TimestepSpacing, TimestepSpacings);
        }
        return config;
    }

    /// <summary>The beta schedules the schedulers compute (trained_betas aside).</summary>
    private static readonly string[] BetaSchedules = ["linear", "scaled_linear", "squaredcos_cap_v2"];

    private static readonly string[] PredictionTypes = ["epsilon", "v_prediction", "sample"];

    private static readonly string[] TimestepSpacings = ["leading", "linspace", "trailing"];

    private static void CheckOneOf(JsonConfig json, string key, string value, string[] known)
    {
        if (Array.IndexOf(known, value) < 0)
        {
            throw new InvalidFileException(json.Path, $"{key} '{value}' is not one of {string.Join(", ", known)}");
        }
    }

    /// <summary>
    /// The first training step must add noise: with a first beta of 0, timestep 0 has sigma 0, which the sigma
    /// samplers (Euler, LMS, DPM++) divide by on their last step.
    /// </summary>
    private static void CheckFirstBeta(JsonConfig json, string key, double beta)
    {
        if (!(beta > 0))
        {
            throw new InvalidFileException(json.Path, $"{key} must be positive: with {beta} the first training timestep has no noise (sigma 0), which the samplers divide by");
        }
    }

    /// <summary>A beta is a per-step noise variance: 1 - beta is the step's alpha, so it must lie in [0, 1).</summary>
    private static void CheckBeta(JsonConfig json, string key, double beta)
    {
        if (!(beta >= 0 && beta < 1))
        {
            throw new InvalidFileException(json.Path, $"{key} must be a noise variance in [0, 1), found {beta}");
        }
    }
}

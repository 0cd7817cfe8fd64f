namespace Sd.Engine.Schedulers;

/// <summary>
/// Where a sigma scheduler puts its noise levels: at its timesteps' sigmas (the config's spacing), on Karras et al.'s
/// rho-7 ramp, spaced evenly in log sigma (A1111's "Exponential" schedule type, diffusers' use_exponential_sigmas), or
/// at a Beta(0.6, 0.6) distribution's quantiles (A1111's "Beta", diffusers' use_beta_sigmas; <see cref="BetaSigmas"/>);
/// the ramps' timesteps are the training times of their sigmas.
/// </summary>
public enum SigmaRamp
{
    Spaced,
    Karras,
    Exponential,
    Beta,
}

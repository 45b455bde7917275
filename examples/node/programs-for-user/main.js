// A chain across runtimes: {"user": "u1", "limit": 3} -> the first 3 programs
// in the genres user-interests (Lua) gives for u1, from programs (Node).
//
//   {"user": "u1", "genres": ["news", "documentary"], "programs": [...]}
//
// A nested call that fails fails this call too (its HearthInvokeError is the
// error), except a refusal marked retryable, which is tried once more.

async function invokeWithRetry(context, name, event) {
  try {
    return await context.invoke(name, event);
  } catch (err) {
    if (!(err instanceof context.HearthInvokeError) || !err.retryable) throw err;
    await new Promise((resolve) => setTimeout(resolve, 50));
    return context.invoke(name, event); // hearth never retries by itself
  }
}

exports.handler = async (event, context) => {
  const { user, limit = 5 } = event ?? {};
  const interests = await invokeWithRetry(context, 'user-interests', { user });
  const programs = await invokeWithRetry(context, 'programs', {});
  const liked = new Set(interests.genres);
  return {
    user: interests.user,
    genres: interests.genres,
    programs: programs.filter((p) => liked.has(p.genre)).slice(0, limit),
  };
};

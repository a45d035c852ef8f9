from cases.access import roles_of


def roles(request):
    return {"user_roles": roles_of(request.user) if hasattr(request, "user") else set()}
